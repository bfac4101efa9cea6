//! The identity part of the store conformance suite (SQLite, and PostgreSQL with
//! `PORTICO_TEST_DATABASE_URL`).

use portico::store::{ClientRow, FamilyRow, GrantRow, RealmKeyRow, RealmRow, StoreError, UserRow};
use time::OffsetDateTime;

use crate::helpers::fresh_store as fresh;

fn at(seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(seconds).expect("time")
}

fn realm(name: &str) -> RealmRow {
    RealmRow {
        name: name.into(),
        settings: r#"{"a":1}"#.into(),
        created: at(1_000),
    }
}

fn key(realm: &str, kid: &str, purpose: &str, state: &str) -> RealmKeyRow {
    RealmKeyRow {
        realm: realm.into(),
        kid: kid.into(),
        purpose: purpose.into(),
        alg: "ES256".into(),
        state: state.into(),
        public_jwk: format!(r#"{{"kid":"{kid}"}}"#),
        sealed_private: vec![1, 2, 3, 0, 255],
        created: at(1_000),
        retire_at: None,
    }
}

fn client(realm: &str, id: &str) -> ClientRow {
    ClientRow {
        realm: realm.into(),
        client_id: id.into(),
        secret_hash: Some(vec![7; 32]),
        settings: "{}".into(),
        created: at(1_000),
    }
}

fn user(realm: &str, id: &str, name: &str) -> UserRow {
    UserRow {
        realm: realm.into(),
        id: id.into(),
        username: name.into(),
        password_hash: Some("$argon2id$…".into()),
        settings: "{}".into(),
        created: at(1_000),
    }
}

#[tokio::test]
async fn realms_and_keys_round_trip_and_bump_the_generation() {
    let (_dir, _db, store) = fresh().await;
    let start = store.identity_generation().await.expect("generation");
    store
        .create_realm(
            &realm("node"),
            &[
                key("node", "a1", "access", "active"),
                key("node", "a2", "access", "next"),
            ],
        )
        .await
        .expect("create");
    assert!(store.identity_generation().await.expect("generation") > start);
    assert_eq!(store.realms().await.expect("realms"), vec![realm("node")]);
    let keys = store.realm_keys().await.expect("keys");
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0].sealed_private, vec![1, 2, 3, 0, 255]);
    assert!(matches!(
        store.create_realm(&realm("node"), &[]).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.realms().await.expect("realms").len(),
        1,
        "nothing changed"
    );
    assert!(matches!(
        store.update_realm("nope", "{}").await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn rotation_promotes_next_retires_active_and_drops_expired_keys() {
    let (_dir, _db, store) = fresh().await;
    store
        .create_realm(
            &realm("node"),
            &[
                key("node", "a1", "access", "active"),
                key("node", "a2", "access", "next"),
            ],
        )
        .await
        .expect("create");
    let state = |keys: Vec<RealmKeyRow>| -> Vec<(String, String)> {
        keys.into_iter().map(|k| (k.kid, k.state)).collect()
    };
    store
        .rotate_realm_keys(
            "node",
            &[key("node", "a3", "access", "next")],
            at(5_000),
            at(2_000),
        )
        .await
        .expect("rotate");
    let mut now = state(store.realm_keys().await.expect("keys"));
    now.sort();
    assert_eq!(
        now,
        [("a1", "retired"), ("a2", "active"), ("a3", "next")].map(|(k, s)| (k.into(), s.into()))
    );
    // The next rotation, after a1's time, drops it.
    store
        .rotate_realm_keys(
            "node",
            &[key("node", "a4", "access", "next")],
            at(9_000),
            at(6_000),
        )
        .await
        .expect("rotate");
    let mut now = state(store.realm_keys().await.expect("keys"));
    now.sort();
    assert_eq!(
        now,
        [("a2", "retired"), ("a3", "active"), ("a4", "next")].map(|(k, s)| (k.into(), s.into()))
    );
}

#[tokio::test]
async fn clients_and_users_are_unique_per_realm_and_go_with_it() {
    let (_dir, _db, store) = fresh().await;
    for name in ["node", "other"] {
        store.create_realm(&realm(name), &[]).await.expect("realm");
    }
    store
        .create_client(&client("node", "gw"))
        .await
        .expect("client");
    store
        .create_client(&client("other", "gw"))
        .await
        .expect("same id, other realm");
    assert!(matches!(
        store.create_client(&client("node", "gw")).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(
        store.create_client(&client("missing", "gw")).await.is_err(),
        "the realm must exist"
    );
    store
        .update_client("node", "gw", r#"{"enabled":false}"#, Some(None))
        .await
        .expect("update");
    let gw = store
        .client("node", "gw")
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(gw.secret_hash, None);
    assert_eq!(gw.settings, r#"{"enabled":false}"#);

    store
        .create_user(&user("node", "u1", "ada"))
        .await
        .expect("user");
    assert!(matches!(
        store.create_user(&user("node", "u2", "ada")).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store
            .user_named("node", "ada")
            .await
            .expect("by name")
            .map(|u| u.id),
        Some("u1".to_owned())
    );
    assert_eq!(store.user("node", "ada").await.expect("by id"), None);
    assert_eq!(store.users("node").await.expect("users").len(), 1);

    store.delete_realm("node").await.expect("delete");
    assert_eq!(store.client("node", "gw").await.expect("read"), None);
    assert_eq!(store.user("node", "u1").await.expect("read"), None);
    assert!(store.client("other", "gw").await.expect("read").is_some());
    assert!(matches!(
        store.delete_client("node", "gw").await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn grants_redeem_once_and_revoked_families_take_no_more() {
    let (_dir, _db, store) = fresh().await;
    store
        .create_realm(&realm("node"), &[])
        .await
        .expect("realm");
    let family = FamilyRow {
        family: "f1".into(),
        realm: "node".into(),
        client_id: "gw".into(),
        subject: "u1".into(),
        created: at(1_000),
        expires: at(9_000),
        revoked: None,
    };
    let grant = |hash: u8| GrantRow {
        token_hash: vec![hash; 32],
        kind: "refresh".into(),
        family: "f1".into(),
        payload: r#"{"scope":"openid"}"#.into(),
        created: at(1_000),
        expires: at(2_000),
        used: None,
    };
    store
        .create_family(&family, &grant(1))
        .await
        .expect("family");
    let gw = portico::store::GrantOwner {
        realm: "node",
        client_id: "gw",
    };
    // Another client, or the same id in another realm, neither redeems nor burns it.
    for other in [("node", "other"), ("elsewhere", "gw")] {
        let owner = portico::store::GrantOwner {
            realm: other.0,
            client_id: other.1,
        };
        assert_eq!(
            store
                .redeem_grant(&[1; 32], "refresh", owner, at(1_050))
                .await
                .expect("redeem"),
            None
        );
    }
    let first = store
        .redeem_grant(&[1; 32], "refresh", gw, at(1_100))
        .await
        .expect("redeem")
        .expect("found");
    assert_eq!(first.grant.used, None, "as it was before this redemption");
    assert_eq!(first.family, family);
    let second = store
        .redeem_grant(&[1; 32], "refresh", gw, at(1_200))
        .await
        .expect("redeem")
        .expect("found");
    assert_eq!(second.grant.used, Some(at(1_100)), "the first use is kept");
    assert_eq!(
        store
            .redeem_grant(&[1; 32], "code", gw, at(1_200))
            .await
            .expect("kind"),
        None
    );
    assert_eq!(
        store
            .redeem_grant(&[9; 32], "refresh", gw, at(1_200))
            .await
            .expect("none"),
        None
    );

    assert!(store.add_grant(&grant(2)).await.expect("add"));
    store.revoke_family("f1", at(1_300)).await.expect("revoke");
    assert!(!store.add_grant(&grant(3)).await.expect("add"), "revoked");
    assert_eq!(store.grant(&[3; 32]).await.expect("read"), None);
    let revoked = store.family("f1").await.expect("family").expect("exists");
    assert_eq!(revoked.revoked, Some(at(1_300)));

    assert_eq!(store.purge_families(at(9_001)).await.expect("purge"), 1);
    assert_eq!(
        store.grant(&[2; 32]).await.expect("read"),
        None,
        "grants go with it"
    );
    assert_eq!(store.family("f1").await.expect("read"), None);
}
