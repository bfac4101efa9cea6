//! The native API's error type and its one table of stable error codes, answered as RFC 9457
//! `application/problem+json`.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// Every error code the native API can answer with. The codes are a contract: clients match on
/// them, so a code is never renamed or reused for another meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// No route matches the request path.
    NotFound,
    /// The route exists but not for this method (the `Allow` header lists those that work).
    MethodNotAllowed,
    /// The body's `Content-Type` is not JSON.
    UnsupportedMediaType,
    /// The body is larger than `limits.max_body_bytes`.
    PayloadTooLarge,
    /// The client took longer than `limits.body_read_timeout_seconds` to send its body.
    RequestTimeout,
    /// The connection broke before the whole body arrived.
    IncompleteBody,
    /// The body is not well-formed JSON.
    MalformedJson,
    /// The body is JSON but not an object.
    BodyNotObject,
    /// The body has no `value` member.
    MissingValue,
    /// The body has a member other than `value`.
    UnknownField,
    /// The body names a member twice.
    DuplicateField,
    /// The value's JSON type does not match the datapoint's type.
    TypeMismatch,
    /// An integer literal outside the signed 64-bit range.
    IntegerOutOfRange,
    /// A number literal too large for a 64-bit float.
    NumberOutOfRange,
    /// A number outside the datapoint's configured `min`/`max`.
    ValueOutOfRange,
    /// A string longer than the datapoint's `max_length`.
    StringTooLong,
    /// No datapoint has this key.
    UnknownDatapoint,
    /// The caller is known but may not do this.
    Forbidden,
    /// The resource needs a bearer token and the request has none.
    Unauthenticated,
    /// The bearer token was refused (expired, bad signature, untrusted issuer, …).
    InvalidToken,
    /// The token is valid but lacks a permission the resource needs.
    InsufficientScope,
    /// The `Authorization` header is malformed.
    InvalidAuthorization,
    /// The store cannot be reached or the server is shutting down; retry later.
    Unavailable,
    /// The server is at one of its limits (connections, requests in progress, streams);
    /// `Retry-After` says when to try again.
    Busy,
    /// A bug: the server failed in a way it did not expect. Details are in its log.
    Internal,
    /// The name is taken (a realm, client, user or app that already exists).
    Conflict,
    /// A value is well-typed but not acceptable (a bad name, URI or setting).
    InvalidValue,
    /// Too many failed attempts from this address or at this account; `Retry-After` says when
    /// to try again.
    TooManyRequests,
    /// A webhook target is not allowed: its address is not global (loopback, private,
    /// link-local, ...) and not in `webhooks.allow_targets`.
    TargetForbidden,
    /// A signed endpoint was called without a `hash`.
    HashMissing,
    /// A signed endpoint's `hash` is not right for the request (never says what would be).
    HashMismatch,
    /// A signed endpoint was sent a parameter it does not declare.
    UnknownParameter,
    /// A signed endpoint's required parameter (one without a default) was not sent.
    MissingParameter,
    /// A parameter value is not acceptable (too long, sent twice, a file instead of text, ...).
    InvalidParameter,
    /// `environment` is not `live` or `preview`, or the application takes no preview calls.
    InvalidEnvironment,
    /// A signed endpoint's outbound action (an HTTP call, an e-mail, a portal item) failed;
    /// the request may be repeated.
    ActionFailed,
}

impl ErrorCode {
    /// The code table, in a stable order (the OpenAPI schema and the README list it).
    pub const ALL: &'static [ErrorCode] = &[
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::UnsupportedMediaType,
        Self::PayloadTooLarge,
        Self::RequestTimeout,
        Self::IncompleteBody,
        Self::MalformedJson,
        Self::BodyNotObject,
        Self::MissingValue,
        Self::UnknownField,
        Self::DuplicateField,
        Self::TypeMismatch,
        Self::IntegerOutOfRange,
        Self::NumberOutOfRange,
        Self::ValueOutOfRange,
        Self::StringTooLong,
        Self::UnknownDatapoint,
        Self::Forbidden,
        Self::Unauthenticated,
        Self::InvalidToken,
        Self::InsufficientScope,
        Self::InvalidAuthorization,
        Self::Unavailable,
        Self::Busy,
        Self::Internal,
        Self::Conflict,
        Self::InvalidValue,
        Self::TooManyRequests,
        Self::TargetForbidden,
        Self::HashMissing,
        Self::HashMismatch,
        Self::UnknownParameter,
        Self::MissingParameter,
        Self::InvalidParameter,
        Self::InvalidEnvironment,
        Self::ActionFailed,
    ];

    /// Which requests can get the code. The OpenAPI document's error responses are generated
    /// from this (`api::openapi`), so a new code is documented wherever it can arise. None: a
    /// method a route does not serve is no operation, and `internal` is a bug.
    pub fn arises(self) -> &'static [Arises] {
        use Arises::*;
        use ErrorCode::*;
        match self {
            Unavailable | Busy => &[Anywhere],
            UnsupportedMediaType | PayloadTooLarge | RequestTimeout | IncompleteBody => &[WithBody],
            MalformedJson => &[WithJsonBody],
            InvalidValue => &[WithJsonBody, WithQuery],
            UnknownField | DuplicateField | TypeMismatch => &[WithQuery, Declared],
            Unauthenticated | InvalidToken | InsufficientScope | InvalidAuthorization
            | Forbidden => &[WithBearer],
            NotFound => &[WithPathName],
            Internal | MethodNotAllowed => &[],
            BodyNotObject | MissingValue | IntegerOutOfRange | NumberOutOfRange
            | ValueOutOfRange | StringTooLong | UnknownDatapoint | Conflict | TooManyRequests
            | TargetForbidden | HashMissing | HashMismatch | UnknownParameter
            | MissingParameter | InvalidParameter | InvalidEnvironment | ActionFailed => {
                &[Declared]
            }
        }
    }

    /// The HTTP status that goes with the code.
    pub fn status(self) -> StatusCode {
        use ErrorCode::*;
        match self {
            NotFound | UnknownDatapoint => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            MalformedJson | IncompleteBody | InvalidAuthorization | UnknownParameter
            | MissingParameter | InvalidParameter | InvalidEnvironment => StatusCode::BAD_REQUEST,
            HashMissing | HashMismatch => StatusCode::FORBIDDEN,
            ActionFailed => StatusCode::FAILED_DEPENDENCY,
            Unauthenticated | InvalidToken => StatusCode::UNAUTHORIZED,
            Forbidden | InsufficientScope => StatusCode::FORBIDDEN,
            BodyNotObject | MissingValue | UnknownField | DuplicateField | TypeMismatch
            | IntegerOutOfRange | NumberOutOfRange | ValueOutOfRange | StringTooLong
            | InvalidValue | TargetForbidden => StatusCode::UNPROCESSABLE_ENTITY,
            Unavailable | Busy => StatusCode::SERVICE_UNAVAILABLE,
            Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Conflict => StatusCode::CONFLICT,
            TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// A short, fixed summary of the problem type (RFC 9457 `title`).
    pub fn title(self) -> &'static str {
        use ErrorCode::*;
        match self {
            NotFound => "Not found",
            MethodNotAllowed => "Method not allowed",
            UnsupportedMediaType => "Unsupported media type",
            PayloadTooLarge => "Payload too large",
            RequestTimeout => "Request body timed out",
            IncompleteBody => "Incomplete body",
            MalformedJson => "Malformed JSON",
            Forbidden => "Forbidden",
            Unauthenticated => "Authentication required",
            InvalidToken => "Invalid token",
            InsufficientScope => "Insufficient scope",
            InvalidAuthorization => "Malformed Authorization header",
            BodyNotObject => "Body is not a JSON object",
            MissingValue => "Missing value",
            UnknownField => "Unknown field",
            DuplicateField => "Duplicate field",
            TypeMismatch => "Type mismatch",
            IntegerOutOfRange => "Integer out of range",
            NumberOutOfRange => "Number out of range",
            ValueOutOfRange => "Value out of range",
            StringTooLong => "String too long",
            UnknownDatapoint => "Unknown datapoint",
            Unavailable => "Service unavailable",
            Busy => "Server busy",
            Internal => "Internal server error",
            Conflict => "Conflict",
            InvalidValue => "Invalid value",
            TooManyRequests => "Too many requests",
            TargetForbidden => "Target forbidden",
            HashMissing => "Hash missing",
            HashMismatch => "Hash mismatch",
            UnknownParameter => "Unknown parameter",
            MissingParameter => "Missing parameter",
            InvalidParameter => "Invalid parameter",
            InvalidEnvironment => "Invalid environment",
            ActionFailed => "Action failed",
        }
    }

    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            NotFound => "not_found",
            MethodNotAllowed => "method_not_allowed",
            UnsupportedMediaType => "unsupported_media_type",
            PayloadTooLarge => "payload_too_large",
            RequestTimeout => "request_timeout",
            IncompleteBody => "incomplete_body",
            MalformedJson => "malformed_json",
            Forbidden => "forbidden",
            Unauthenticated => "unauthenticated",
            InvalidToken => "invalid_token",
            InsufficientScope => "insufficient_scope",
            InvalidAuthorization => "invalid_authorization",
            BodyNotObject => "body_not_object",
            MissingValue => "missing_value",
            UnknownField => "unknown_field",
            DuplicateField => "duplicate_field",
            TypeMismatch => "type_mismatch",
            IntegerOutOfRange => "integer_out_of_range",
            NumberOutOfRange => "number_out_of_range",
            ValueOutOfRange => "value_out_of_range",
            StringTooLong => "string_too_long",
            UnknownDatapoint => "unknown_datapoint",
            Unavailable => "unavailable",
            Busy => "busy",
            Internal => "internal",
            Conflict => "conflict",
            InvalidValue => "invalid_value",
            TooManyRequests => "too_many_requests",
            TargetForbidden => "target_forbidden",
            HashMissing => "hash_missing",
            HashMismatch => "hash_mismatch",
            UnknownParameter => "unknown_parameter",
            MissingParameter => "missing_parameter",
            InvalidParameter => "invalid_parameter",
            InvalidEnvironment => "invalid_environment",
            ActionFailed => "action_failed",
        }
    }
}

/// Which requests an error code can answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arises {
    /// Any request: the server is at one of its limits, shutting down, or without its store.
    Anywhere,
    /// A request with a body (its size, media type, and how long it takes to arrive).
    WithBody,
    /// A request with a JSON body.
    WithJsonBody,
    /// A request to an operation that takes a bearer token (required or optional): a malformed
    /// header, a refused token, or a policy the token does not meet.
    WithBearer,
    /// A request with query parameters: one unknown, given twice, or not acceptable.
    WithQuery,
    /// A request whose path names something (a realm, a client, a subscription) that may not
    /// exist, or that cannot be read as a name.
    WithPathName,
    /// Only the operations that document it (a conflict, a refused value, a throttle).
    Declared,
}

/// An RFC 9457 problem document, as sent.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemOut {
    /// A URI naming the problem type: `urn:portico:problem:<code>`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// A short summary of the problem type.
    pub title: &'static str,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request, as a sentence.
    pub detail: String,
    /// The stable, machine-readable error code.
    pub code: ErrorCode,
}

/// An error answered by the native API.
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    detail: String,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    /// An error with `code` and a human sentence explaining it.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            headers: Vec::new(),
        }
    }

    /// Adds a response header (`Allow`, `WWW-Authenticate`, …).
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// A 405 naming the methods that the resource does accept.
    pub fn method_not_allowed(method: &axum::http::Method, allow: &str) -> Self {
        let error = Self::new(
            ErrorCode::MethodNotAllowed,
            format!("{method} is not allowed here; allowed methods: {allow}."),
        );
        match HeaderValue::from_str(allow) {
            Ok(value) => error.with_header(header::ALLOW, value),
            Err(_) => error,
        }
    }

    /// A bug or an unexpected failure. The cause is logged here, and the client gets a bare 500.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(
            ErrorCode::Internal,
            "The server failed unexpectedly; the cause is in its log.",
        )
    }

    /// A 503 for a limit the server is at, to be retried after `retry_after`.
    pub fn busy(detail: impl Into<String>, retry_after: std::time::Duration) -> Self {
        let seconds = retry_after.as_secs().max(1);
        Self::new(ErrorCode::Busy, detail)
            .with_header(header::RETRY_AFTER, HeaderValue::from(seconds))
    }

    /// The error's code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The human sentence.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.code.status();
        let body = ProblemOut {
            type_uri: format!("urn:portico:problem:{}", self.code.as_str()),
            title: self.code.title(),
            status: status.as_u16(),
            detail: self.detail,
            code: self.code,
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = (status, bytes).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_serializes_as_its_wire_name() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_value(code).unwrap_or_default();
            assert_eq!(json, code.as_str(), "{code:?}");
        }
    }

    #[test]
    fn only_server_faults_are_5xx() {
        for code in ErrorCode::ALL {
            let server_fault = matches!(
                code,
                ErrorCode::Unavailable | ErrorCode::Busy | ErrorCode::Internal
            );
            assert_eq!(code.status().is_server_error(), server_fault, "{code:?}");
        }
    }
}
