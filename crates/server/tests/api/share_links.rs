//! Share links against the real router: an anonymous holder opens a private item or an
//! album through the link alone; expiry, passwords (wrong ones limited), revocation,
//! the download flag on originals, hidden metadata, slugs and view counts.

use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::both_backends;
use crate::fixtures;
use crate::helpers::{error_code, Backend, TestApp};
use crate::social::{json_of, send};

both_backends!(a_share_link_opens_what_it_shares_to_anyone_holding_it_and_nothing_more);

async fn link(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    send(app, token, "POST", "/api/v1/share-links", Some(body)).await
}

async fn made(app: &TestApp, token: &str, body: Value) -> Value {
    json_of(link(app, token, body).await, StatusCode::CREATED).await
}

async fn opened(app: &TestApp, slug: &str, key: Option<&str>) -> reqwest::Response {
    let path = match key {
        Some(k) => format!("/api/v1/shared/{slug}?key={k}"),
        None => format!("/api/v1/shared/{slug}"),
    };
    app.get(None, &path).await
}

async fn unlock(app: &TestApp, slug: &str, password: &str) -> reqwest::Response {
    let url = app.url(&format!("/api/v1/shared/{slug}/unlock"));
    let body = json!({ "password": password });
    app.client.post(url).json(&body).send().await.unwrap()
}

async fn a_share_link_opens_what_it_shares_to_anyone_holding_it_and_nothing_more(backend: Backend) {
    let app = crate::helpers::spawn_app(backend).await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let bytes = fixtures::jpeg(320, 200);
    let photo = app
        .upload_ok(&alice, bytes.clone(), "title=Lake&tags=sea,sun")
        .await;
    let p = photo["id"].as_str().unwrap().to_string();
    app.wait_processed(&alice, &p).await;

    // Only one's own is shared; a bad request is refused clearly.
    let theirs = link(&app, &bob, json!({ "item_id": p })).await;
    assert_eq!(error_code(theirs).await.0, StatusCode::NOT_FOUND);
    for bad in [
        json!({}),
        json!({ "item_id": p, "album_id": p }),
        json!({ "item_id": p, "expires_in_secs": 5 }),
        json!({ "item_id": p, "slug": "No Spaces" }),
        json!({ "item_id": p, "password": "abc" }),
    ] {
        let resp = link(&app, &alice, bad.clone()).await;
        assert_eq!(
            error_code(resp).await,
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_share_link".into()
            ),
            "{bad}"
        );
    }

    // A plain link: the holder sees the item and its renditions, not its original, and
    // the item itself stays private.
    let plain = made(&app, &alice, json!({ "item_id": p, "slug": "lake-week" })).await;
    assert_eq!(plain["slug"], "lake-week");
    assert!(plain["url"].as_str().unwrap().ends_with("/s/lake-week"));
    assert!(plain["api_url"]
        .as_str()
        .unwrap()
        .ends_with("/api/v1/shared/lake-week"));
    let taken = link(&app, &alice, json!({ "item_id": p, "slug": "lake-week" })).await;
    assert_eq!(
        error_code(taken).await,
        (StatusCode::CONFLICT, "slug_taken".into())
    );
    let shared = json_of(opened(&app, "lake-week", None).await, StatusCode::OK).await;
    assert_eq!(shared["kind"], "item");
    assert_eq!(shared["owner"]["username"], "alice");
    let item = &shared["items"][0];
    assert_eq!(
        (item["id"].as_str(), item["title"].as_str()),
        (Some(p.as_str()), Some("Lake"))
    );
    assert_eq!(item["tags"], json!(["sea", "sun"]));
    assert_eq!(item["download_url"], Value::Null);
    let variant = item["variants"][0]["url"].as_str().unwrap();
    assert!(variant.contains("?token="), "{variant}");
    let rendition = app.get(None, variant).await;
    assert_eq!(rendition.status(), StatusCode::OK);
    assert!(image::load_from_memory(&rendition.bytes().await.unwrap()).is_ok());
    assert_eq!(app.get_item(None, &p).await.status(), StatusCode::NOT_FOUND);
    let original = app
        .get(None, &format!("/api/v1/shared/lake-week/original/{p}"))
        .await;
    assert_eq!(
        error_code(original).await,
        (StatusCode::FORBIDDEN, "download_not_allowed".into())
    );

    // Downloads when the link allows them: the very bytes uploaded.
    let body = json!({ "item_id": p, "allow_download": true, "show_metadata": false });
    let open = made(&app, &alice, body).await;
    let slug = open["slug"].as_str().unwrap();
    assert_eq!(slug.len(), 22);
    let shared = json_of(opened(&app, slug, None).await, StatusCode::OK).await;
    let item = &shared["items"][0];
    assert_eq!(
        (
            item["title"].clone(),
            item["tags"].clone(),
            item["created_at"].clone()
        ),
        (Value::Null, json!([]), Value::Null)
    );
    assert_eq!(shared["title"], Value::Null, "metadata hidden");
    // Its token opens the item page and oEmbed without the words either.
    let hidden_token = item["variants"][0]["url"].as_str().unwrap();
    let hidden_token = hidden_token.split_once("?token=").unwrap().1.to_string();
    let page = app
        .get(None, &format!("/items/{p}?token={hidden_token}"))
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(!page.text().await.unwrap().contains("Lake"));
    let page_url = format!(
        "{}/items/{p}?token={hidden_token}",
        app.state.settings.public_url()
    );
    let mut oembed = url::form_urlencoded::Serializer::new(String::from("/oembed?"));
    oembed.append_pair("url", &page_url);
    let oembed = json_of(app.get(None, &oembed.finish()).await, StatusCode::OK).await;
    assert_ne!(oembed["title"], "Lake");
    let got = app.get(None, item["download_url"].as_str().unwrap()).await;
    assert_eq!(got.status(), StatusCode::OK);
    let digest = hex::encode(Sha256::digest(got.bytes().await.unwrap()));
    assert_eq!(digest, hex::encode(Sha256::digest(&bytes)));
    // Another item is not reachable through it.
    let other = app.upload_ok(&alice, fixtures::jpeg(30, 20), "").await;
    let path = format!(
        "/api/v1/shared/{slug}/original/{}",
        other["id"].as_str().unwrap()
    );
    assert_eq!(app.get(None, &path).await.status(), StatusCode::NOT_FOUND);

    // A password: asked, wrong ones refused and limited, the right one buys a key.
    let locked = made(
        &app,
        &alice,
        json!({ "item_id": p, "password": "open sesame", "allow_download": true }),
    )
    .await;
    let ls = locked["slug"].as_str().unwrap().to_string();
    assert!(locked["has_password"].as_bool().unwrap());
    assert_eq!(
        error_code(opened(&app, &ls, None).await).await,
        (StatusCode::UNAUTHORIZED, "password_required".into())
    );
    assert_eq!(
        error_code(opened(&app, &ls, Some("9999999999.forged")).await)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let resp = unlock(&app, &ls, "open sesame").await;
    let key = json_of(resp, StatusCode::OK).await["key"]
        .as_str()
        .unwrap()
        .to_string();
    let shared = json_of(opened(&app, &ls, Some(&key)).await, StatusCode::OK).await;
    let download = shared["items"][0]["download_url"].as_str().unwrap();
    assert!(download.ends_with(&format!("?key={key}")), "{download}");
    assert_eq!(app.get(None, download).await.status(), StatusCode::OK);
    let bare = format!("/api/v1/shared/{ls}/original/{p}");
    assert_eq!(
        app.get(None, &bare).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // Five attempts a minute from one address, the right one above included.
    for _ in 0..4 {
        let resp = unlock(&app, &ls, "guess").await;
        assert_eq!(
            error_code(resp).await,
            (StatusCode::UNAUTHORIZED, "wrong_password".into())
        );
    }
    for password in ["guess", "open sesame"] {
        let resp = unlock(&app, &ls, password).await;
        assert_eq!(
            error_code(resp).await,
            (StatusCode::TOO_MANY_REQUESTS, "rate_limited".into())
        );
    }
    let plain_unlock = unlock(&app, "lake-week", "anything").await;
    assert_eq!(
        error_code(plain_unlock).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    // Views are counted for the owner, who alone lists and revokes.
    let list = json_of(
        app.get(Some(&alice), "/api/v1/share-links").await,
        StatusCode::OK,
    )
    .await;
    let views = |slug: &str| {
        let links = list["links"].as_array().unwrap();
        links.iter().find(|l| l["slug"] == slug).unwrap()["views"]
            .as_i64()
            .unwrap()
    };
    assert_eq!((views("lake-week"), views(&ls)), (1, 1));
    assert_eq!(
        json_of(
            app.get(Some(&bob), "/api/v1/share-links").await,
            StatusCode::OK
        )
        .await["links"],
        json!([])
    );
    let id = plain["id"].as_str().unwrap();
    let revoke = format!("/api/v1/share-links/{id}");
    assert_eq!(
        send(&app, &bob, "DELETE", &revoke, None).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(&app, &alice, "DELETE", &revoke, None).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        opened(&app, "lake-week", None).await.status(),
        StatusCode::NOT_FOUND
    );
    // What the link handed out ends with it, not when its tokens expire.
    assert_eq!(app.get(None, variant).await.status(), StatusCode::NOT_FOUND);
    let list = json_of(
        app.get(Some(&alice), "/api/v1/share-links").await,
        StatusCode::OK,
    )
    .await;
    assert!(list["links"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["slug"] == "lake-week" && l["revoked_at"].is_string()));

    // Expiry: past its time a link answers 410.
    sqlx::query("UPDATE share_links SET expires_at = 1 WHERE slug = $1")
        .bind(slug)
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    assert_eq!(
        error_code(opened(&app, slug, None).await).await,
        (StatusCode::GONE, "link_expired".into())
    );
    let timed = made(
        &app,
        &alice,
        json!({ "item_id": p, "expires_in_secs": 3600 }),
    )
    .await;
    assert!(timed["expires_at"].is_string());

    // An album link shows the items their owners put in, not what others added.
    let album = json_of(
        send(
            &app,
            &alice,
            "POST",
            "/api/v1/albums",
            Some(json!({ "title": "Trip" })),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let a = album["id"].as_str().unwrap().to_string();
    send(
        &app,
        &alice,
        "PUT",
        &format!("/api/v1/albums/{a}/members/bob"),
        Some(json!({ "role": "editor" })),
    )
    .await;
    let bobs = app
        .upload_ok(&bob, fixtures::jpeg(34, 22), "visibility=public")
        .await;
    let b = bobs["id"].as_str().unwrap().to_string();
    let public = app
        .upload_ok(&alice, fixtures::jpeg(36, 22), "visibility=public")
        .await;
    let q = public["id"].as_str().unwrap().to_string();
    for (who, id) in [(&alice, &p), (&bob, &b), (&bob, &q)] {
        let resp = send(
            &app,
            who,
            "POST",
            &format!("/api/v1/albums/{a}/items"),
            Some(json!({ "media_ids": [id] })),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::OK);
    }
    let theirs = link(&app, &bob, json!({ "album_id": a })).await;
    assert_eq!(
        theirs.status(),
        StatusCode::NOT_FOUND,
        "an editor does not share the album by link"
    );
    let album_link = made(&app, &alice, json!({ "album_id": a })).await;
    let shared = json_of(
        opened(&app, album_link["slug"].as_str().unwrap(), None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (shared["kind"].as_str(), shared["title"].as_str()),
        (Some("album"), Some("Trip"))
    );
    let ids: Vec<&str> = shared["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    // Only alice's own items that alice put in: bob's stays bob's to share, and her
    // public one that bob put in is not hers by that entry.
    assert_eq!(ids, [p.as_str()]);
}
