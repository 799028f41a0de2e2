//! One error type for every route, mapped to a status code and a JSON body
//! `{"error": code, "message": text}`. Internal causes are logged, never returned.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Errors of the services crate.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    BadRequest(String),
    /// A request body that could not be read as the JSON asked for.
    #[error("{message}")]
    Unreadable {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
    /// Missing, expired or forged credentials. The message is the same for every cause.
    #[error("not signed in, or the token has expired")]
    Unauthorized,
    /// Wrong email or wrong password: one message for both.
    #[error("wrong email or password")]
    BadCredentials,
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("too many attempts; try again in {retry_after} s")]
    RateLimited { retry_after: u64 },
    #[error("range not satisfiable")]
    RangeNotSatisfiable { size: u64 },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{0}")]
    Internal(String),
    /// Errors of the command-line and import paths, which name the file or URL.
    #[error("{0}")]
    Import(String),
}

pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

impl ServiceError {
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        ServiceError::Forbidden {
            code,
            message: message.into(),
        }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ServiceError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ServiceError::Unreadable { status, code, .. } => (*status, code),
            ServiceError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ServiceError::BadCredentials => (StatusCode::UNAUTHORIZED, "bad_credentials"),
            ServiceError::Forbidden { code, .. } => (StatusCode::FORBIDDEN, code),
            ServiceError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ServiceError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ServiceError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ServiceError::RangeNotSatisfiable { .. } => {
                (StatusCode::RANGE_NOT_SATISFIABLE, "range_not_satisfiable")
            }
            ServiceError::Database(_) | ServiceError::Internal(_) | ServiceError::Import(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        }
    }
}

impl IntoResponse for ServiceError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
            // The cause goes to the log (with the request id), not to the client.
            tracing::error!(error = %self, "request failed");
            "internal error".to_string()
        } else {
            self.to_string()
        };
        let mut response = (
            status,
            axum::Json(json!({ "error": code, "message": message })),
        )
            .into_response();
        match self {
            ServiceError::RateLimited { retry_after } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            }
            ServiceError::RangeNotSatisfiable { size } => {
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    response.headers_mut().insert(header::CONTENT_RANGE, v);
                }
            }
            ServiceError::Unauthorized => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

/// A JSON request body. A body that is not JSON, not the JSON asked for, too large or of
/// another content type is answered in the API's error shape (axum's own `Json` answers in
/// plain text), with axum's status for it.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for JsonBody<T> {
    type Rejection = ServiceError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self> {
        axum::Json::<T>::from_request(req, state)
            .await
            .map(|axum::Json(v)| JsonBody(v))
            .map_err(ServiceError::from)
    }
}

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::OptionalFromRequest<S>
    for JsonBody<T>
{
    type Rejection = ServiceError;

    /// No body (no JSON content type) is `None`; a body that is there must be right.
    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Option<Self>> {
        <axum::Json<T> as axum::extract::OptionalFromRequest<S>>::from_request(req, state)
            .await
            .map(|v| v.map(|axum::Json(v)| JsonBody(v)))
            .map_err(ServiceError::from)
    }
}

impl From<axum::extract::rejection::JsonRejection> for ServiceError {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> Self {
        let code = match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => "too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            _ => "bad_request",
        };
        ServiceError::Unreadable {
            status: rejection.status(),
            code,
            message: rejection.body_text(),
        }
    }
}
