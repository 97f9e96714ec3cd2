//! Albums against the real router: members see a private item through the album and
//! lose it when it leaves or they do; contributors add only their own items and remove
//! only what they added; an item put in by someone other than its owner grants nothing;
//! the album's own visibility opens its items to friends or to anyone; a page of an
//! album, checked as one batch, shows each item exactly when reading it alone would.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::both_backends;
use crate::fixtures;
use crate::helpers::{error_code, Backend, TestApp};
use crate::social::{befriend, code, json_of, send};

both_backends!(
    an_album_grants_its_owners_items_to_its_readers_while_they_are_in_it,
    a_page_of_an_album_shows_each_item_exactly_when_reading_it_alone_would,
);

/// The status of `GET path` for `token` (anonymous when `None`).
async fn sees(app: &TestApp, token: Option<&str>, path: &str) -> StatusCode {
    app.get(token, path).await.status()
}

/// The ids of the album's items `token` may read.
async fn listed(app: &TestApp, token: Option<&str>, album: &str) -> Vec<String> {
    let path = format!("/api/v1/albums/{album}/items");
    let page = json_of(app.get(token, &path).await, StatusCode::OK).await;
    let items = page["items"].as_array().unwrap().iter();
    items
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

async fn items(
    app: &TestApp,
    token: &str,
    method: &str,
    album: &str,
    ids: &[&str],
) -> reqwest::Response {
    let path = format!("/api/v1/albums/{album}/items");
    send(app, token, method, &path, Some(json!({ "media_ids": ids }))).await
}

async fn member(
    app: &TestApp,
    token: &str,
    album: &str,
    name: &str,
    role: &str,
) -> reqwest::Response {
    let path = format!("/api/v1/albums/{album}/members/{name}");
    send(app, token, "PUT", &path, Some(json!({ "role": role }))).await
}

async fn an_album_grants_its_owners_items_to_its_readers_while_they_are_in_it(backend: Backend) {
    let app = crate::helpers::spawn_app(backend).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let dave = app.user("dave").await;
    let erin = app.user("erin").await;
    befriend(&app, &alice, "erin", &erin).await;
    befriend(&app, &carol, "erin", &erin).await;
    let (ok, gone, forbidden) = (StatusCode::OK, StatusCode::NOT_FOUND, StatusCode::FORBIDDEN);

    let private = app.upload_ok(&alice, fixtures::jpeg(300, 200), "").await;
    let p = private["id"].as_str().unwrap().to_string();
    app.wait_processed(&alice, &p).await;
    let item = format!("/api/v1/media/{p}");
    let thumb = format!("/img/{p}/w_64.jpg");
    let body = json!({ "title": "  Lake week ", "description": "Five days" });
    let made = send(&app, &alice, "POST", "/api/v1/albums", Some(body)).await;
    let album = json_of(made, StatusCode::CREATED).await;
    assert_eq!(
        (album["title"].as_str(), album["visibility"].as_str()),
        (Some("Lake week"), Some("private"))
    );
    assert_eq!(album["role"], "owner");
    let a = album["id"].as_str().unwrap().to_string();
    let at = format!("/api/v1/albums/{a}");
    let bad = send(
        &app,
        &alice,
        "POST",
        "/api/v1/albums",
        Some(json!({ "title": " " })),
    )
    .await;
    assert_eq!(error_code(bad).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    let added = json_of(items(&app, &alice, "POST", &a, &[&p]).await, ok).await;
    assert_eq!(
        (added["changed"].as_i64(), added["items"].as_i64()),
        (Some(1), Some(1))
    );
    let again = json_of(items(&app, &alice, "POST", &a, &[&p]).await, ok).await;
    assert_eq!(again["changed"], 0, "already in");
    // Adding changed nothing of the item; nobody else sees the album or the item yet.
    assert_eq!(
        json_of(app.get(Some(&alice), &item).await, ok).await["visibility"],
        "private"
    );
    for who in [Some(bob.as_str()), Some(dave.as_str()), None] {
        assert_eq!(sees(&app, who, &at).await, gone);
        assert_eq!(sees(&app, who, &item).await, gone);
    }

    // A member sees the album, its members and its item, by every route.
    assert_eq!(
        json_of(member(&app, &alice, &a, "bob", "viewer").await, ok).await["role"],
        "viewer"
    );
    assert_eq!(
        member(&app, &bob, &a, "dave", "viewer").await.status(),
        forbidden
    );
    let bad = member(&app, &alice, &a, "dave", "king").await;
    assert_eq!(error_code(bad).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    let seen = json_of(app.get(Some(&bob), &at).await, ok).await;
    assert_eq!(seen["role"], "viewer");
    assert_eq!(seen["members"][0]["username"], "bob");
    assert_eq!(sees(&app, Some(&bob), &item).await, ok);
    assert_eq!(sees(&app, Some(&bob), &thumb).await, ok);
    assert_eq!(listed(&app, Some(&bob), &a).await, [p.as_str()]);
    assert_eq!(
        sees(&app, Some(&dave), &item).await,
        gone,
        "a stranger still does not"
    );
    let albums = json_of(app.get(Some(&bob), "/api/v1/albums").await, ok).await;
    assert_eq!(albums["albums"][0]["id"], a.as_str());
    app.wait_for_events(&bob, "types=album.invited", |seen| {
        seen.iter().any(|e| e["data"]["album_id"] == a.as_str())
    })
    .await;
    // A viewer adds nothing, changes nothing.
    let mine = app.upload_ok(&bob, fixtures::jpeg(30, 20), "").await;
    assert_eq!(
        items(&app, &bob, "POST", &a, &[mine["id"].as_str().unwrap()])
            .await
            .status(),
        forbidden
    );
    assert_eq!(
        send(&app, &bob, "PATCH", &at, Some(json!({ "title": "mine" })))
            .await
            .status(),
        forbidden
    );

    // A contributor adds their own items only, and removes only what they added.
    member(&app, &alice, &a, "carol", "contributor").await;
    let carols = app.upload_ok(&carol, fixtures::jpeg(32, 20), "").await;
    let c = carols["id"].as_str().unwrap().to_string();
    let public = app
        .upload_ok(&alice, fixtures::jpeg(34, 20), "visibility=public")
        .await;
    let public_id = public["id"].as_str().unwrap();
    assert_eq!(
        items(&app, &carol, "POST", &a, &[public_id]).await.status(),
        forbidden
    );
    assert_eq!(
        json_of(items(&app, &carol, "POST", &a, &[&c]).await, ok).await["items"],
        2
    );
    assert_eq!(
        sees(&app, Some(&bob), &format!("/api/v1/media/{c}")).await,
        ok,
        "carol shared hers"
    );
    assert_eq!(
        items(&app, &carol, "DELETE", &a, &[&p]).await.status(),
        forbidden
    );
    app.wait_for_events(&alice, "types=album.items_added", |seen| !seen.is_empty())
        .await;
    assert_eq!(
        json_of(items(&app, &carol, "DELETE", &a, &[&c]).await, ok).await["changed"],
        1
    );
    assert_eq!(
        sees(&app, Some(&bob), &format!("/api/v1/media/{c}")).await,
        gone
    );

    // An editor may put in what they can read of others', but that grants nothing.
    member(&app, &alice, &a, "carol", "editor").await;
    let erins = app
        .upload_ok(&erin, fixtures::jpeg(36, 20), "visibility=friends")
        .await;
    let e = erins["id"].as_str().unwrap().to_string();
    assert_eq!(
        json_of(items(&app, &carol, "POST", &a, &[&e]).await, ok).await["changed"],
        1
    );
    assert_eq!(
        sees(&app, Some(&bob), &format!("/api/v1/media/{e}")).await,
        gone
    );
    assert_eq!(
        listed(&app, Some(&bob), &a).await,
        [p.as_str()],
        "only what bob may read"
    );
    let mut all = listed(&app, Some(&carol), &a).await;
    all.sort();
    let mut expected = vec![p.clone(), e.clone()];
    expected.sort();
    assert_eq!(all, expected);
    // … and only the owner changes who may see the album.
    let open = send(
        &app,
        &carol,
        "PATCH",
        &at,
        Some(json!({ "visibility": "public" })),
    )
    .await;
    assert_eq!(open.status(), forbidden);
    let cover = send(
        &app,
        &carol,
        "PATCH",
        &at,
        Some(json!({ "cover_id": public_id })),
    )
    .await;
    assert_eq!(
        error_code(cover).await.0,
        StatusCode::UNPROCESSABLE_ENTITY,
        "not in the album"
    );
    let cover = send(
        &app,
        &carol,
        "PATCH",
        &at,
        Some(json!({ "cover_id": p, "sort": "added_asc" })),
    )
    .await;
    assert_eq!(
        json_of(cover, ok).await["cover_url"],
        format!("/img/{p}/w_512,h_512,fit_cover.jpg")
    );

    // The album's own visibility: friends of its owner, then anyone.
    assert_eq!(sees(&app, Some(&erin), &item).await, gone);
    send(
        &app,
        &alice,
        "PATCH",
        &at,
        Some(json!({ "visibility": "friends" })),
    )
    .await;
    assert_eq!(
        json_of(app.get(Some(&erin), &at).await, ok).await["role"],
        "reader"
    );
    assert_eq!(
        json_of(app.get(Some(&erin), &at).await, ok).await["members"],
        json!([]),
        "members to members only"
    );
    assert_eq!(sees(&app, Some(&erin), &item).await, ok);
    assert_eq!(sees(&app, Some(&dave), &item).await, gone);
    assert_eq!(sees(&app, None, &item).await, gone);
    send(
        &app,
        &alice,
        "PATCH",
        &at,
        Some(json!({ "visibility": "public" })),
    )
    .await;
    assert_eq!(sees(&app, None, &at).await, ok);
    assert_eq!(sees(&app, None, &item).await, ok);
    assert_eq!(sees(&app, None, &thumb).await, ok);
    assert_eq!(sees(&app, Some(&dave), &item).await, ok);
    assert_eq!(
        listed(&app, None, &a).await,
        [p.as_str()],
        "erin's friends item stays hers"
    );
    // A block still wins over an open album.
    let block = send(
        &app,
        &alice,
        "POST",
        "/api/v1/blocks",
        Some(json!({ "user": "dave" })),
    )
    .await;
    assert_eq!(block.status(), StatusCode::NO_CONTENT);
    assert_eq!(sees(&app, Some(&dave), &at).await, gone);
    assert_eq!(sees(&app, Some(&dave), &item).await, gone);
    send(
        &app,
        &alice,
        "PATCH",
        &at,
        Some(json!({ "visibility": "private" })),
    )
    .await;
    assert_eq!(sees(&app, None, &item).await, gone);

    // Out of the album, out of reach; and a member who leaves loses it too.
    json_of(items(&app, &alice, "DELETE", &a, &[&p]).await, ok).await;
    assert_eq!(sees(&app, Some(&bob), &item).await, gone);
    assert_eq!(sees(&app, Some(&bob), &thumb).await, gone);
    assert_eq!(
        json_of(app.get(Some(&alice), &at).await, ok).await["cover_id"],
        Value::Null
    );
    json_of(items(&app, &alice, "POST", &a, &[&p]).await, ok).await;
    assert_eq!(sees(&app, Some(&bob), &item).await, ok);
    assert_eq!(
        code(&app, &bob, "DELETE", &format!("{at}/members/bob")).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(sees(&app, Some(&bob), &item).await, gone);
    assert_eq!(sees(&app, Some(&bob), &at).await, gone);
    assert_eq!(
        code(&app, &alice, "DELETE", &format!("{at}/members/bob")).await,
        gone,
        "gone already"
    );
    assert_eq!(
        code(&app, &carol, "DELETE", &format!("{at}/members/erin")).await,
        forbidden
    );
    // An item's owner takes it out again whatever their part now: carol, an editor who
    // put hers in, is removed from the album and still withdraws her item.
    assert_eq!(
        json_of(items(&app, &carol, "POST", &a, &[&c]).await, ok).await["changed"],
        1
    );
    let carol_out = format!("{at}/members/carol");
    assert_eq!(
        code(&app, &alice, "DELETE", &carol_out).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(sees(&app, Some(&carol), &at).await, gone);
    let not_hers = items(&app, &carol, "DELETE", &a, &[&c, &p]).await;
    assert_eq!(
        not_hers.status(),
        gone,
        "only her own, and she is not a member"
    );
    let withdrawn = json_of(items(&app, &carol, "DELETE", &a, &[&c]).await, ok).await;
    assert_eq!(withdrawn["changed"], 1);
    member(&app, &alice, &a, "carol", "editor").await;
    // A block ends membership in each other's albums, both ways.
    member(&app, &alice, &a, "erin", "viewer").await;
    let erin_in = "SELECT COUNT(*) FROM album_members WHERE user_id = (SELECT id FROM users WHERE username = 'erin')";
    assert_eq!(app.scalar(erin_in).await, 1);
    let block = send(
        &app,
        &erin,
        "POST",
        "/api/v1/blocks",
        Some(json!({ "user": "alice" })),
    )
    .await;
    assert_eq!(block.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.scalar(erin_in).await, 0);
    // Deleting the album ends every grant; the items stay their owners'.
    assert_eq!(code(&app, &carol, "DELETE", &at).await, forbidden);
    assert_eq!(sees(&app, Some(&carol), &item).await, ok);
    assert_eq!(
        code(&app, &alice, "DELETE", &at).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(sees(&app, Some(&carol), &item).await, gone);
    assert_eq!(sees(&app, Some(&alice), &item).await, ok);
    assert_eq!(app.count("album_items").await, 0);
}

/// The ids of `ids` that `token` may read one by one (`GET /api/v1/media/{id}`).
async fn readable_alone(app: &TestApp, token: &str, ids: &[&str]) -> Vec<String> {
    let mut readable = Vec::new();
    for id in ids {
        if sees(app, Some(token), &format!("/api/v1/media/{id}")).await == StatusCode::OK {
            readable.push(id.to_string());
        }
    }
    readable.sort();
    readable
}

async fn a_page_of_an_album_shows_each_item_exactly_when_reading_it_alone_would(backend: Backend) {
    let app = crate::helpers::spawn_app(backend).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let erin = app.user("erin").await;
    let frank = app.user("frank").await;
    befriend(&app, &bob, "erin", &erin).await;
    befriend(&app, &carol, "erin", &erin).await;
    befriend(&app, &carol, "frank", &frank).await;
    let ok = StatusCode::OK;
    let made = send(
        &app,
        &alice,
        "POST",
        "/api/v1/albums",
        Some(json!({ "title": "Mixed" })),
    )
    .await;
    let a = json_of(made, StatusCode::CREATED).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    member(&app, &alice, &a, "bob", "contributor").await;
    member(&app, &alice, &a, "carol", "editor").await;
    let upload = |token: String, n: u32, query: &'static str| {
        let app = &app;
        async move {
            let item = app
                .upload_ok(&token, fixtures::jpeg(40 + n, 20), query)
                .await;
            item["id"].as_str().unwrap().to_string()
        }
    };
    // One page, every kind of answer: granted (alice's and carol's own private items),
    // bob's own, a friend's `friends` item (erin's), an open one, and a `friends` item
    // of someone bob is no friend of, which carol's putting it in does not grant.
    let alices = upload(alice.clone(), 0, "").await;
    let carols = upload(carol.clone(), 1, "").await;
    let bobs = upload(bob.clone(), 2, "").await;
    let erins = upload(erin.clone(), 3, "visibility=friends").await;
    let franks_public = upload(frank.clone(), 4, "visibility=public").await;
    let franks_friends = upload(frank.clone(), 5, "visibility=friends").await;
    for (token, id) in [
        (&alice, &alices),
        (&carol, &carols),
        (&bob, &bobs),
        (&carol, &erins),
        (&carol, &franks_public),
        (&carol, &franks_friends),
    ] {
        assert_eq!(items(&app, token, "POST", &a, &[id]).await.status(), ok);
    }
    let all = [
        alices.as_str(),
        &carols,
        &bobs,
        &erins,
        &franks_public,
        &franks_friends,
    ];
    let mut expected = vec![
        alices.clone(),
        carols.clone(),
        bobs.clone(),
        erins.clone(),
        franks_public.clone(),
    ];
    expected.sort();
    let page = |token: String| {
        let app = &app;
        let a = a.clone();
        async move {
            let mut ids = listed(app, Some(&token), &a).await;
            ids.sort();
            ids
        }
    };
    assert_eq!(page(bob.clone()).await, expected);
    assert_eq!(readable_alone(&app, &bob, &all).await, expected);
    // A block hides everything of the blocker, granted or not, in the page as alone;
    // erin's block also ends the friendship that opened her item.
    for (blocker, gone) in [(&carol, &carols), (&erin, &erins)] {
        let block = send(
            &app,
            blocker,
            "POST",
            "/api/v1/blocks",
            Some(json!({ "user": "bob" })),
        )
        .await;
        assert_eq!(block.status(), StatusCode::NO_CONTENT);
        expected.retain(|id| id != gone);
        assert_eq!(page(bob.clone()).await, expected);
        assert_eq!(readable_alone(&app, &bob, &all).await, expected);
    }
    // Unblocked, carol's item is granted again at once (erin's stays hidden: the
    // friendship the block ended does not come back).
    assert_eq!(
        code(&app, &carol, "DELETE", "/api/v1/blocks/bob").await,
        StatusCode::NO_CONTENT
    );
    expected.push(carols.clone());
    expected.sort();
    assert_eq!(page(bob.clone()).await, expected);
    assert_eq!(readable_alone(&app, &bob, &all).await, expected);
}
