//! The one error type of the API: client errors carry a stable `code` and a safe message;
//! internal errors are logged here and answered with a bare 500 that names nothing inside.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// An error answered to a client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("a valid bearer token is required")]
    Unauthorized,
    #[error("the token's role may not do this")]
    Forbidden,
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("the request body is larger than the server accepts")]
    PayloadTooLarge,
    /// A failure of the service itself: logged with its detail, answered without it.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// The JSON body of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable, for programs: `unauthorized`, `forbidden`, `not_found`, `invalid_*`,
    /// `loop_guard`, `body_too_large`, `internal`, … (every one listed in docs/support.md,
    /// as test `every_error_code_the_service_answers_is_documented` checks).
    pub code: &'static str,
    /// For people; never internal detail.
    pub message: String,
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest { code, message: message.into() }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::NotFound(message.into())
    }

    /// The status and stable code of this error.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            ApiError::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<catalog_store::StoreError> for ApiError {
    fn from(error: catalog_store::StoreError) -> Self {
        match error {
            // A lost race (another operator or auto-heal changed the row): the client may
            // ask again. The store's detail stays in the log.
            catalog_store::StoreError::Conflict(detail) => {
                tracing::warn!(detail, "store conflict answered 409");
                ApiError::Conflict { code: "conflict", message: "the resource changed meanwhile; try again".to_owned() }
            }
            error => ApiError::Internal(anyhow::Error::new(error)),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let ApiError::Internal(error) = &self {
            tracing::error!(error = format!("{error:#}"), "request failed");
        }
        let mut response = (status, Json(ErrorBody { code, message: self.to_string() })).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"admin-api\""),
            );
        }
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of the body is never read, so the connection cannot carry another
            // request: say so, or a client reusing it gets a broken pipe on its next call.
            response
                .headers_mut()
                .insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
        }
        response
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::PayloadTooLarge;
        }
        ApiError::bad_request(
            "invalid_body",
            format!("the body is not the JSON this route takes: {}", rejection.body_text()),
        )
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::QueryRejection) -> Self {
        ApiError::bad_request("invalid_query", rejection.body_text())
    }
}

/// Every path parameter is taken as text and parsed by its handler into its own code
/// (`invalid_tenant`, `invalid_dead_letter_id`, …), so what is left here is a segment that is
/// not text at all.
impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::PathRejection) -> Self {
        use axum::extract::path::ErrorKind;
        use axum::extract::rejection::PathRejection;

        match &rejection {
            PathRejection::FailedToDeserializePathParams(failed) => match failed.kind() {
                ErrorKind::InvalidUtf8InPathParam { key } => {
                    ApiError::bad_request("invalid_path", format!("the path's {key} is not UTF-8 once percent-decoded"))
                }
                _ => ApiError::bad_request("invalid_path", "the path does not fit this route"),
            },
            _ => ApiError::Internal(anyhow::anyhow!("path parameters: {}", rejection.body_text())),
        }
    }
}
