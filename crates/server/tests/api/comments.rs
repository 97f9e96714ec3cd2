//! Comments and likes against the real router: only who may see an item or album may
//! read or write them; authors and owners delete; owners turn comments off; likes count
//! once; owners are told; a deleted item takes its comments along.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::both_backends;
use crate::fixtures;
use crate::helpers::{error_code, eventually, Backend, TestApp};
use crate::social::{befriend, code, json_of, send};

both_backends!(comments_and_likes_follow_what_the_caller_may_see);

async fn say(app: &TestApp, token: &str, path: &str, body: &str) -> reqwest::Response {
    send(app, token, "POST", path, Some(json!({ "body": body }))).await
}

async fn comment_ids(app: &TestApp, token: Option<&str>, path: &str) -> Vec<String> {
    let page = json_of(app.get(token, path).await, StatusCode::OK).await;
    let list = page["comments"].as_array().unwrap().iter();
    list.map(|c| c["body"].as_str().unwrap().to_string())
        .collect()
}

async fn comments_and_likes_follow_what_the_caller_may_see(backend: Backend) {
    let app = crate::helpers::spawn_app(backend).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let dave = app.user("dave").await;
    befriend(&app, &alice, "bob", &bob).await;
    let public = app
        .upload_ok(&alice, fixtures::jpeg(40, 30), "visibility=public")
        .await;
    let private = app.upload_ok(&alice, fixtures::jpeg(42, 30), "").await;
    let p = public["id"].as_str().unwrap().to_string();
    let on_p = format!("/api/v1/media/{p}/comments");
    let on_q = format!("/api/v1/media/{}/comments", private["id"].as_str().unwrap());

    // Writing and reading: anyone who may see the item; the owner is told.
    let made = json_of(
        say(&app, &bob, &on_p, "  What a lake!  ").await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        (made["body"].as_str(), made["author"]["username"].as_str()),
        (Some("What a lake!"), Some("bob"))
    );
    let page = app
        .wait_until_json(&alice, "/api/v1/notifications", |p| {
            p["notifications"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["type"] == "comment.created")
        })
        .await;
    assert_eq!(
        page["notifications"][0]["data"]["comment"]["body"],
        "What a lake!"
    );
    let anonymous = json_of(app.get(None, &on_p).await, StatusCode::OK).await;
    assert_eq!(anonymous["comments"][0]["can_delete"], false);
    assert_eq!(anonymous["comments_enabled"], true);
    assert_eq!(
        app.get(Some(&carol), &on_q).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        say(&app, &carol, &on_q, "peek").await.status(),
        StatusCode::NOT_FOUND
    );
    let empty = say(&app, &carol, &on_p, "   ").await;
    assert_eq!(
        error_code(empty).await,
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_comment".into())
    );
    let carols = json_of(
        say(&app, &carol, &on_p, "Where is it?").await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        comment_ids(&app, None, &on_p).await,
        ["What a lake!", "Where is it?"]
    );

    // Deleting: the author, or the owner of the item; nobody else.
    let path = format!("/api/v1/comments/{}", carols["id"].as_str().unwrap());
    assert_eq!(
        code(&app, &bob, "DELETE", &path).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        code(&app, &alice, "DELETE", &path).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        code(&app, &alice, "DELETE", &path).await,
        StatusCode::NOT_FOUND
    );
    let bobs = json_of(
        say(&app, &bob, &on_p, "second thought").await,
        StatusCode::CREATED,
    )
    .await;
    let path = format!("/api/v1/comments/{}", bobs["id"].as_str().unwrap());
    assert_eq!(
        code(&app, &bob, "DELETE", &path).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(comment_ids(&app, Some(&bob), &on_p).await, ["What a lake!"]);

    // The owner turns comments off: reading stays, writing is refused.
    let settings = format!("/api/v1/media/{p}/comments/settings");
    let off = json!({ "enabled": false });
    assert_eq!(
        send(&app, &bob, "PUT", &settings, Some(off.clone()))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send(&app, &alice, "PUT", &settings, Some(off))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    let refused = say(&app, &bob, &on_p, "hello?").await;
    assert_eq!(
        error_code(refused).await,
        (StatusCode::FORBIDDEN, "comments_off".into())
    );
    assert_eq!(
        json_of(app.get(None, &on_p).await, StatusCode::OK).await["comments_enabled"],
        false
    );
    let on = json!({ "enabled": true });
    assert_eq!(
        send(&app, &alice, "PUT", &settings, Some(on))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        say(&app, &bob, &on_p, "back").await.status(),
        StatusCode::CREATED
    );

    // Likes: once per user, counted, the owner told; unliking takes it back.
    let likes = format!("/api/v1/media/{p}/likes");
    for _ in 0..2 {
        let liked = json_of(send(&app, &bob, "PUT", &likes, None).await, StatusCode::OK).await;
        assert_eq!(
            (liked["likes"].as_i64(), liked["liked_by_me"].as_bool()),
            (Some(1), Some(true))
        );
    }
    app.wait_until_json(&alice, "/api/v1/notifications", |p| {
        p["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["type"] == "like.created")
            .count()
            == 1
    })
    .await;
    let seen = json_of(app.get(Some(&carol), &likes).await, StatusCode::OK).await;
    assert_eq!(seen["users"][0]["username"], "bob");
    assert_eq!(seen["liked_by_me"], false);
    let gone = json_of(
        send(&app, &bob, "DELETE", &likes, None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(gone["likes"], 0);
    let private_likes = format!("/api/v1/media/{}/likes", private["id"].as_str().unwrap());
    assert_eq!(
        send(&app, &carol, "PUT", &private_likes, None)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    // A blocked user finds neither the item nor what is said of it.
    let block = send(
        &app,
        &alice,
        "POST",
        "/api/v1/blocks",
        Some(json!({ "user": "dave" })),
    )
    .await;
    assert_eq!(block.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get(Some(&dave), &on_p).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        say(&app, &dave, &on_p, "hi").await.status(),
        StatusCode::NOT_FOUND
    );

    // Albums take comments and likes the same way.
    let album = send(
        &app,
        &alice,
        "POST",
        "/api/v1/albums",
        Some(json!({ "title": "Open", "visibility": "public" })),
    )
    .await;
    let a = json_of(album, StatusCode::CREATED).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let on_a = format!("/api/v1/albums/{a}/comments");
    assert_eq!(
        say(&app, &carol, &on_a, "Nice album").await.status(),
        StatusCode::CREATED
    );
    assert_eq!(comment_ids(&app, None, &on_a).await, ["Nice album"]);
    let liked = send(
        &app,
        &carol,
        "PUT",
        &format!("/api/v1/albums/{a}/likes"),
        None,
    )
    .await;
    assert_eq!(json_of(liked, StatusCode::OK).await["likes"], 1);
    let hidden = send(
        &app,
        &alice,
        "PATCH",
        &format!("/api/v1/albums/{a}"),
        Some(json!({ "visibility": "private" })),
    )
    .await;
    assert_eq!(hidden.status(), StatusCode::OK);
    assert_eq!(
        app.get(Some(&carol), &on_a).await.status(),
        StatusCode::NOT_FOUND
    );

    // A deleted item takes its comments and likes with it.
    send(&app, &bob, "PUT", &likes, None).await;
    assert_eq!(
        code(&app, &alice, "DELETE", &format!("/api/v1/media/{p}")).await,
        StatusCode::NO_CONTENT
    );
    let left = |table: &'static str| {
        let app = &app;
        let p = p.clone();
        async move {
            let sql = format!("SELECT COUNT(*) FROM {table} WHERE target_id = $1");
            sqlx::query_scalar::<_, i64>(&sql)
                .bind(p)
                .fetch_one(&app.state.db.pool)
                .await
                .unwrap()
        }
    };
    eventually(
        Duration::from_secs(10),
        "the item's comments to go",
        || async { left("comments").await == 0 && left("likes").await == 0 },
    )
    .await;
}
