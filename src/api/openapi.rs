//! The OpenAPI 3.1 document: the native API as annotated in the code, plus one path per
//! configured endpoint with a schema for its datapoint's type.

use utoipa::OpenApi;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::path::{HttpMethod, OperationBuilder};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{
    AdditionalProperties, KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type,
};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required, ResponseBuilder};

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use crate::api::error::{Arises, ErrorCode};
use crate::config::{Catalog, Config};
use crate::datapoint::{Datapoint, ValueType};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Portico",
        description = "A self-hosted, secure data-exchange server for devices and applications.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        super::datapoints::list,
        super::datapoints::get_one,
        super::datapoints::events,
        super::datapoints::history,
        super::events::list,
        super::events::stream,
        super::ops::healthz,
        super::ops::readyz,
        super::ops::metrics,
        super::apps::authenticate,
        super::xrtc::portal_events,
        super::xrtc::registration_start,
        super::xrtc::registration_code,
        super::xrtc::login,
        super::xrtc::set_item,
        super::xrtc::get_item,
        super::oidc::discovery,
        super::oidc::certs,
        super::oidc::token,
        super::oidc::authorize::page,
        super::oidc::authorize::submit,
        super::oidc::authorize::logout,
        super::oidc::authorize::logout_post,
        super::oidc::tokens::userinfo,
        super::oidc::tokens::introspect,
        super::oidc::tokens::revoke,
        super::admin::list_realms,
        super::admin::create_realm,
        super::admin::get_realm,
        super::admin::update_realm,
        super::admin::delete_realm,
        super::admin::list_keys,
        super::admin::rotate_keys,
        super::admin::list_clients,
        super::admin::create_client,
        super::admin::get_client,
        super::admin::update_client,
        super::admin::delete_client,
        super::admin::reset_client_secret,
        super::admin::list_users,
        super::admin::create_user,
        super::admin::get_user,
        super::admin::update_user,
        super::admin::set_password,
        super::admin::delete_user,
        super::admin::list_apps,
        super::admin::create_app,
        super::admin::get_app,
        super::admin::update_app,
        super::admin::delete_app,
        super::admin::reset_app_secret,
        super::admin::list_xrtc_keys,
        super::admin::revoke_xrtc_key,
        super::webhooks::list_topics,
        super::webhooks::list_subscriptions,
        super::webhooks::create_subscription,
        super::webhooks::get_subscription,
        super::webhooks::update_subscription,
        super::webhooks::delete_subscription,
        super::webhooks::rotate_secret,
        super::webhooks::list_deliveries,
        super::webhooks::redeliver,
        super::webhooks::list_attempts,
        super::webhooks::replay,
        super::series::list_streams,
        super::series::create_stream,
        super::series::get_stream,
        super::series::update_stream,
        super::series::delete_stream,
        super::series::write_values,
        super::values::read_values,
        super::values::read_many,
        super::series::value_proof,
        super::series::validate_range,
        super::series::proof_keys,
        super::series::latest_checkpoint,
        super::series::checkpoint_key,
        super::series::consistency,
        super::demeter::write_raw,
        super::demeter::write_typed,
        super::demeter::read_typed,
        super::demeter::locations,
        super::demeter::proof_history,
        super::demeter::validate,
        super::demeter::submit_proofs,
    ),
    modifiers(&BearerScheme),
    components(schemas(crate::api::error::ProblemOut, crate::api::error::ErrorCode, super::datapoints::ValueOut)),
    tags(
        (name = "Datapoints", description = "Typed values declared in the configuration."),
        (name = "Endpoints", description = "Configured paths that read and write one datapoint each \
            with `{\"value\": …}` bodies."),
        (name = "Events", description = "The event journal: every durable event (datapoint \
            writes, signed calls, subscription changes) in sequence order, paged or followed \
            live with portal items too. Each reader sees only the events it may read."),
        (name = "Operations", description = "Health, readiness and metrics."),
        (name = "Streams", description = "Streams of typed values: settings, values in and out \
            by timestamp, a value's inclusion proof, range validation, and the node's proof keys \
            (README, \"Streams, values and proofs\")."),
        (name = "Values", description = "Tributech's Values API under `/demeter/api`: values of \
            a stream written and read as one type (`double`, `float`, `int`, `long`, `bool`, \
            `stringUtf8`, `string` as base64, `byte`), paged by `PageNumber` and `PageSize`."),
        (name = "Proof", description = "Tributech's Proof API under `/demeter/api`: the proofs' \
            locations, a proof's validation history, and validation against the stored values."),
        (name = "Portals", description = "XRTC portals, followed natively."),
        (name = "XRTC", description = "The XRTC API on its seed's wire: registration by e-mail, \
            login with an API key (the session is the `JSESSIONID` cookie), and items set to and \
            got from portals. Bodies are the seed's lenient JSON; errors are \
            `{\"error\": {\"errorgroup\", \"errorcode\", \"errormessage\"}}` (README, \"XRTC\")."),
        (name = "Admin", description = "The built-in identity provider's realms, keys, clients, \
            users and apps. Needs a token of the admin realm with the `portico:admin` role."),
        (name = "WebHookSubscription", description = "Webhook subscriptions: create, list, \
            read, update, delete; secret rotation; deliveries, attempt log, redelivery and \
            replay. Needs a token of the admin realm with the `portico:admin` or \
            `portico:webhooks` role."),
        (name = "WebHookTopic", description = "Every event topic a subscription can name, with \
            its QoS."),
        (name = "OpenID Connect", description = "The built-in identity provider at Keycloak's \
            paths: discovery, keys, the token endpoint (client credentials, authorization code \
            with PKCE, refresh), the sign-in page, logout, userinfo, introspection and \
            revocation. Errors of the token, introspection and revocation endpoints are OAuth \
            2.0's `{\"error\", \"error_description\"}`; the pages answer HTML."),
        (name = "App authentication", description = "Access tokens for apps: by app id and \
            secret, by revalidating a token, or by a token the app signed itself (ES256)."),
        (name = "Signed endpoints", description = "OpenEndpoints-style endpoints of the configured \
            applications, authenticated by `hash` = hex SHA-256 of the endpoint name, the \
            include-in-hash values in order, the environment (`live`, or `preview` with \
            `environment=preview`) and a secret key. Parameters come in the query or, for POST, \
            in a form, multipart or JSON body."),
    )
)]
struct NativeApi;

/// The security schemes operations name: `bearer` (RFC 6750) and `client` (HTTP Basic, for
/// the OpenID Connect endpoints' client authentication).
struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A JWT from a trusted issuer or one of Portico's realms \
                         (`/realms/{realm}/protocol/openid-connect/token`).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "client",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "A client of the realm: its id and secret (RFC 6749 section 2.3.1).",
                    ))
                    .build(),
            ),
        );
    }
}

/// The Tributech Node API's tags, spelled and ordered as its Swagger UI shows them.
pub const TRIBUTECH_TAGS: [&str; 13] = [
    "Agent",
    "Agents",
    "Credentials",
    "Graph",
    "Model",
    "ModelManagement",
    "Proof",
    "Relationships",
    "Twins",
    "Validation",
    "Values",
    "WebHookSubscription",
    "WebHookTopic",
];

/// The document at `/demeter/api/swagger/v1/swagger.json`: "Tributech Node API", version "v1",
/// the Tributech tags, and the operations of `full` under them. Its server is `/demeter/api`, so
/// paths there are written without that prefix; the webhook API's operations keep their own
/// paths, with a server `/` of their own.
pub fn tributech(full: &utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::server::Server;
    use utoipa::openapi::tag::TagBuilder;
    let mut document = full.clone();
    document.info.title = "Tributech Node API".into();
    document.info.version = "v1".into();
    document.info.description = Some("API for Tributech Node.".into());
    document.servers = Some(vec![Server::new("/demeter/api")]);
    let tagged = |item: &utoipa::openapi::path::PathItem| {
        [&item.get, &item.put, &item.post, &item.delete, &item.patch]
            .into_iter()
            .flatten()
            .any(|operation| {
                operation
                    .tags
                    .iter()
                    .flatten()
                    .any(|tag| TRIBUTECH_TAGS.contains(&tag.as_str()))
            })
    };
    let mut paths = utoipa::openapi::path::Paths::new();
    for (path, item) in &full.paths.paths {
        if !tagged(item) {
            continue;
        }
        match path.strip_prefix("/demeter/api") {
            Some(rest) => {
                paths.paths.insert(rest.to_owned(), item.clone());
            }
            None => {
                let mut item = item.clone();
                item.servers = Some(vec![Server::new("/")]);
                paths.paths.insert(path.clone(), item);
            }
        }
    }
    document.paths = paths;
    let known = full.tags.clone().unwrap_or_default();
    document.tags = Some(
        TRIBUTECH_TAGS
            .iter()
            .map(|name| {
                known
                    .iter()
                    .find(|tag| tag.name == *name)
                    .cloned()
                    .unwrap_or_else(|| {
                        TagBuilder::new()
                            .name(*name)
                            .description(Some("Not served by this node yet."))
                            .build()
                    })
            })
            .collect(),
    );
    document
}

/// The document for a configuration and its catalog: the surfaces it turns on, its endpoints.
pub fn document(config: &Config, catalog: &Catalog) -> utoipa::openapi::OpenApi {
    let mut document = NativeApi::openapi();
    let mut off: Vec<&str> = Vec::new();
    if !config.idp.enabled {
        off.extend(["Admin", "OpenID Connect", "App authentication"]);
    }
    if !config.xrtc.enabled {
        off.extend(["XRTC", "Portals"]);
    }
    if !config.webhooks.enabled {
        off.extend(["WebHookSubscription", "WebHookTopic"]);
    }
    without_tags(&mut document, &off);
    for endpoint in &catalog.endpoints {
        let Some(datapoint) = catalog
            .datapoints
            .iter()
            .find(|d| d.key == endpoint.datapoint)
        else {
            continue;
        };
        let slug: String = endpoint
            .path
            .trim_start_matches('/')
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let about = endpoint
            .description
            .clone()
            .or_else(|| datapoint.description.clone())
            .unwrap_or_default();
        let mut methods = Vec::new();
        if datapoint.access.readable() {
            methods.push((HttpMethod::Get, read_operation(datapoint, &slug, &about)));
        }
        if datapoint.access.writable() {
            methods.push((
                HttpMethod::Put,
                write_operation(datapoint, &format!("write_{slug}"), &about),
            ));
            methods.push((
                HttpMethod::Post,
                write_operation(datapoint, &format!("post_{slug}"), &about),
            ));
        }
        for (method, operation) in methods {
            document
                .paths
                .add_path_operation(&endpoint.path, vec![method], operation);
        }
    }
    for endpoint in &catalog.signed.endpoints {
        let methods = [
            (endpoint.get, HttpMethod::Get),
            (endpoint.post, HttpMethod::Post),
        ];
        for (_, method) in methods.into_iter().filter(|(served, _)| *served) {
            let operation = signed_operation(endpoint, method == HttpMethod::Post);
            document
                .paths
                .add_path_operation(&endpoint.path, vec![method], operation);
        }
    }
    error_responses(&mut document);
    event_envelopes(&mut document);
    links(&mut document);
    document
}

/// A creation's links: the operation, the parameters, the operations linked to.
type Link = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static [&'static str],
);

/// What each creation links to (OpenAPI `links`): the operation that creates, the parameters
/// its answer (or its request) gives, and the operations on what it created. Clients, and
/// Schemathesis's stateful phase, follow them from a new resource to its reads, updates and
/// deletion.
const LINKS: &[Link] = &[
    (
        "create_realm",
        &[("realm", "$response.body#/name")],
        &[
            "get_realm",
            "update_realm",
            "delete_realm",
            "list_keys",
            "rotate_keys",
            "list_clients",
            "create_client",
            "list_users",
            "create_user",
        ],
    ),
    (
        "create_client",
        &[
            ("realm", "$request.path.realm"),
            ("client_id", "$response.body#/client_id"),
        ],
        &[
            "get_client",
            "update_client",
            "delete_client",
            "reset_client_secret",
        ],
    ),
    (
        "create_user",
        &[
            ("realm", "$request.path.realm"),
            ("id", "$response.body#/id"),
        ],
        &["get_user", "update_user", "set_password", "delete_user"],
    ),
    (
        "create_app",
        &[("app_id", "$response.body#/app_id")],
        &["get_app", "update_app", "delete_app", "reset_app_secret"],
    ),
    (
        "create_subscription",
        &[("id", "$response.body#/id")],
        &[
            "get_subscription",
            "update_subscription",
            "delete_subscription",
            "rotate_secret",
            "list_deliveries",
            "list_attempts",
            "replay",
        ],
    ),
];

fn links(document: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::link::LinkBuilder;
    for (creates, parameters, targets) in LINKS {
        let created = document
            .paths
            .paths
            .values_mut()
            .flat_map(|item| slots(item).into_iter().flatten())
            .find(|operation| operation.operation_id.as_deref() == Some(creates))
            .and_then(|operation| operation.responses.responses.get_mut("201"));
        let Some(RefOr::T(created)) = created else {
            continue;
        };
        for target in *targets {
            // utoipa 5.5 writes `LinkBuilder::operation_id` as `operation_id`; OpenAPI's name
            // for it is `operationId`.
            let operation_id = Extensions::from_iter([("operationId", *target)]);
            let link = parameters.iter().fold(
                LinkBuilder::new().extensions(Some(operation_id)),
                |link, (name, value)| link.parameter(*name, *value),
            );
            created
                .links
                .insert((*target).to_owned(), RefOr::T(link.build()));
        }
    }
}

/// Describes each event of a `text/event-stream` answer as OpenAPI 3.2's `itemSchema` does
/// (3.1 documents carry it in `schema`, where Schemathesis reads it): its `event` name, its
/// `id`, and its `data`, a JSON text whose schema is the one the operation's annotation names.
fn event_envelopes(document: &mut utoipa::openapi::OpenApi) {
    let responses = document.paths.paths.values_mut().flat_map(|item| {
        slots(item)
            .into_iter()
            .flatten()
            .flat_map(|operation| operation.responses.responses.values_mut())
    });
    for response in responses {
        let RefOr::T(response) = response else {
            continue;
        };
        let Some(content) = response.content.get_mut("text/event-stream") else {
            continue;
        };
        let Some(data) = content.schema.take() else {
            continue;
        };
        let data = serde_json::to_value(&data).unwrap_or_default();
        let string = |about: &str| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some(about))
        };
        let envelope = ObjectBuilder::new()
            .property("event", string("The event's name (its topic)."))
            .property("id", string("Its position, for `Last-Event-ID`."))
            .property(
                "data",
                string("The event, as JSON.")
                    .content_media_type("application/json")
                    .extensions(Some(Extensions::from_iter([("contentSchema", data)]))),
            )
            .required("event")
            .required("data");
        content.schema = Some(RefOr::T(envelope.into()));
    }
}

/// A path's operations, by method (the methods Portico serves).
fn slots(
    item: &mut utoipa::openapi::PathItem,
) -> [&mut Option<utoipa::openapi::path::Operation>; 5] {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.patch,
    ]
}

/// Removes the operations of surfaces the configuration turns off (their routes answer 404).
fn without_tags(document: &mut utoipa::openapi::OpenApi, off: &[&str]) {
    let is_off = |operation: &Option<utoipa::openapi::path::Operation>| {
        operation
            .as_ref()
            .and_then(|o| o.tags.as_ref())
            .is_some_and(|tags| tags.iter().any(|tag| off.contains(&tag.as_str())))
    };
    document.paths.paths.retain(|_, item| {
        for operation in slots(item) {
            if is_off(operation) {
                *operation = None;
            }
        }
        slots(item).iter().any(|operation| operation.is_some())
    });
    if let Some(tags) = document.tags.as_mut() {
        tags.retain(|tag| !off.contains(&tag.name.as_str()));
    }
}

/// Adds to every operation the problem documents its kind of request can get, generated from
/// the error table ([`ErrorCode::arises`]): the server-wide ones everywhere, the body's where
/// there is a body, the bearer token's where one is taken, `not_found` where the path names
/// something, the query's where there is a query. Codes only some operations answer are in
/// those operations' own annotations. An operation that answers in another error shape
/// (XRTC's, OAuth 2.0's) documents its own errors and gets only the problems answered before
/// its handler runs: the server-wide ones (request tracking) and a path that names nothing.
fn error_responses(document: &mut utoipa::openapi::OpenApi) {
    for (path, item) in document.paths.paths.iter_mut() {
        let names_something = path.contains('{');
        for operation in slots(item).into_iter().flatten() {
            let own_errors = operation
                .responses
                .responses
                .iter()
                .any(|(status, response)| {
                    status.starts_with('4')
                        && matches!(response, RefOr::T(r)
                        if r.content.keys().any(|media| media != PROBLEM))
                });
            let body = operation.request_body.as_ref();
            let json_body = body.is_some_and(|b| b.content.contains_key("application/json"));
            let bearer = operation.security.iter().flatten().any(|requirement| {
                serde_json::to_value(requirement).is_ok_and(|v| v.get("bearer").is_some())
            });
            let query = operation.parameters.iter().flatten().any(|parameter| {
                parameter.parameter_in == utoipa::openapi::path::ParameterIn::Query
            });
            let arises = |code: &&ErrorCode| {
                code.arises().iter().any(|arises| match arises {
                    Arises::Anywhere => true,
                    // A path that cannot be read is refused before any handler runs.
                    Arises::WithPathName => names_something,
                    _ if own_errors => false,
                    Arises::WithBody => body.is_some(),
                    Arises::WithJsonBody => json_body,
                    Arises::WithQuery => query,
                    Arises::WithBearer => bearer,
                    Arises::Declared => false,
                })
            };
            let mut by_status: BTreeMap<u16, Vec<ErrorCode>> = BTreeMap::new();
            for code in ErrorCode::ALL.iter().filter(arises) {
                by_status
                    .entry(code.status().as_u16())
                    .or_default()
                    .push(*code);
            }
            for (status, codes) in by_status {
                let listed: Vec<String> = codes
                    .iter()
                    .map(|code| format!("`{}` ({})", code.as_str(), code.title().to_lowercase()))
                    .collect();
                let about = format!("A problem document: {}.", listed.join(", "));
                let responses = &mut operation.responses.responses;
                match responses.entry(status.to_string()) {
                    Entry::Vacant(vacant) => {
                        vacant.insert(RefOr::T(problem(&about)));
                    }
                    Entry::Occupied(mut occupied) => {
                        if let RefOr::T(response) = occupied.get_mut() {
                            add_problem_content(response);
                        }
                    }
                }
            }
            for (status, response) in operation.responses.responses.iter_mut() {
                if let RefOr::T(response) = response
                    && (status.starts_with('4') || status.starts_with('5'))
                    && response.content.is_empty()
                {
                    add_problem_content(response);
                }
            }
        }
    }
}

/// The problem document's media type (RFC 9457).
const PROBLEM: &str = "application/problem+json";

fn add_problem_content(response: &mut utoipa::openapi::Response) {
    response
        .content
        .entry(PROBLEM.to_owned())
        .or_insert_with(|| {
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ProblemOut")))
                .build()
        });
}

/// A signed endpoint's GET or POST: its declared parameters, `hash` and `environment`.
fn signed_operation(
    endpoint: &crate::openendpoints::SignedEndpoint,
    post: bool,
) -> utoipa::openapi::path::Operation {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    let string = |about: String| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(about))
    };
    let hashed = |name: &str| {
        endpoint
            .include_in_hash
            .iter()
            .any(|&i| endpoint.parameters[i].name == name)
    };
    let about = |parameter: &crate::openendpoints::Parameter| match (
        hashed(&parameter.name),
        &parameter.default,
    ) {
        (true, _) => "Included in the hash.".to_owned(),
        (false, Some(default)) => format!("Default `{default}`."),
        (false, None) => String::new(),
    };
    let mut operation = OperationBuilder::new()
        .tag("Signed endpoints")
        .operation_id(Some(format!(
            "{}_{}_{}",
            if post { "post" } else { "get" },
            endpoint.application,
            endpoint.name
        )))
        .summary(Some(format!(
            "Call `{}` of application `{}`",
            endpoint.name, endpoint.application
        )))
        .description(endpoint.description.clone())
        .parameter(
            ParameterBuilder::new()
                .name("hash")
                .parameter_in(ParameterIn::Query)
                .required(if post {
                    Required::False
                } else {
                    Required::True
                })
                .schema(Some(string(
                    "64 hex digits, either case (or in the body).".into(),
                ))),
        )
        .parameter(
            ParameterBuilder::new()
                .name("environment")
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .schema(Some(string("`live` (the default) or `preview`.".into()))),
        );
    let mut body = ObjectBuilder::new();
    for parameter in &endpoint.parameters {
        if parameter.file {
            body = body.property(
                &parameter.name,
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
                    .description(Some("A file (multipart/form-data only).")),
            );
            continue;
        }
        if post {
            body = body.property(&parameter.name, string(about(parameter)));
        } else {
            operation = operation.parameter(
                ParameterBuilder::new()
                    .name(&parameter.name)
                    .parameter_in(ParameterIn::Query)
                    .required(match parameter.default {
                        Some(_) => Required::False,
                        None => Required::True,
                    })
                    .schema(Some(string(about(parameter)))),
            );
        }
    }
    if post {
        let body: Schema = body.property("hash", string("The hash.".into())).into();
        let mut request = RequestBodyBuilder::new();
        for media in [
            "application/x-www-form-urlencoded",
            "multipart/form-data",
            "application/json",
        ] {
            request = request.content(
                media,
                ContentBuilder::new()
                    .schema(Some(RefOr::T(body.clone())))
                    .build(),
            );
        }
        operation = operation.request_body(Some(request.build()));
    }
    let success = match &endpoint.answer {
        crate::openendpoints::Answer::Called => (
            "200",
            "The call was carried out: its application, endpoint and environment.",
        ),
        crate::openendpoints::Answer::StaticFile(_) => ("200", "The configured file."),
        crate::openendpoints::Answer::Redirect(_) => ("303", "To the configured URL."),
    };
    if post {
        operation = operation
            .response(
                "413",
                problem("The body is larger than `openendpoints.max_body_bytes`."),
            )
            .response(
                "415",
                problem("A body that is not a form, multipart or JSON."),
            );
    }
    if let crate::openendpoints::Answer::StaticFile(_) = &endpoint.answer {
        operation = operation.response(
            "404",
            problem("The file is not in the static directory (`not_found`)."),
        );
    }
    operation
        .response(
            success.0,
            ResponseBuilder::new().description(success.1).build(),
        )
        .response(
            "400",
            problem("A parameter is unknown, missing or not acceptable, or the environment is."),
        )
        .response("403", problem("The hash is missing or does not match."))
        .response("422", problem("A datapoint refused the value."))
        .response(
            "424",
            problem("An action (an HTTP call, an e-mail, a portal item) failed; retry."),
        )
        .response(
            "429",
            problem("Too many calls from this address, or in progress; see `Retry-After`."),
        )
        .response("503", problem("The store could not commit; retry."))
        .build()
}

fn value_schema(datapoint: &Datapoint) -> ObjectBuilder {
    let builder = match datapoint.value_type {
        ValueType::Bool => ObjectBuilder::new().schema_type(Type::Boolean),
        ValueType::Int => ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64))),
        ValueType::Float => ObjectBuilder::new()
            .schema_type(Type::Number)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Double))),
        ValueType::String => ObjectBuilder::new()
            .schema_type(Type::String)
            .max_length(Some(datapoint.max_length)),
    };
    let unit = datapoint
        .unit
        .as_deref()
        .map(|u| format!(" Unit: {u}."))
        .unwrap_or_default();
    builder
        .minimum(datapoint.min)
        .maximum(datapoint.max)
        .description(Some(format!(
            "The value of datapoint `{}`.{unit}",
            datapoint.key
        )))
}

fn problem(description: &str) -> utoipa::openapi::Response {
    let mut response = ResponseBuilder::new().description(description).build();
    add_problem_content(&mut response);
    response
}

fn current_value() -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description("The current value, its quality and when it was written.")
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ValueOut")))
                .build(),
        )
        .build()
}

fn read_operation(
    datapoint: &Datapoint,
    slug: &str,
    about: &str,
) -> utoipa::openapi::path::Operation {
    OperationBuilder::new()
        .tag("Endpoints")
        .operation_id(Some(format!("read_{slug}")))
        .summary(Some(format!("Read datapoint `{}`", datapoint.key)))
        .description(Some(about.to_owned()))
        .securities(Some(optional_bearer()))
        .response("200", current_value())
        .build()
}

/// A bearer token, which the datapoint's policies may ask for.
fn optional_bearer() -> [SecurityRequirement; 2] {
    [
        SecurityRequirement::default(),
        SecurityRequirement::new("bearer", Vec::<String>::new()),
    ]
}

fn write_operation(
    datapoint: &Datapoint,
    operation_id: &str,
    about: &str,
) -> utoipa::openapi::path::Operation {
    let body: Schema = ObjectBuilder::new()
        .property("value", value_schema(datapoint))
        .required("value")
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .into();
    OperationBuilder::new()
        .tag("Endpoints")
        .operation_id(Some(operation_id.to_owned()))
        .summary(Some(format!("Write datapoint `{}`", datapoint.key)))
        .description(Some(about.to_owned()))
        .securities(Some(optional_bearer()))
        .request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(RefOr::T(body))).build(),
                )
                .build(),
        ))
        .response("200", current_value())
        .response(
            "400",
            problem("The body is not JSON or did not arrive in full."),
        )
        .response(
            "413",
            problem("The body is larger than `limits.max_body_bytes`."),
        )
        .response("415", problem("The body is not sent as JSON."))
        .response(
            "422",
            problem("The body is not `{\"value\": …}` with a value of the datapoint's type."),
        )
        .response(
            "503",
            problem("The store could not commit the write; retry."),
        )
        .build()
}
