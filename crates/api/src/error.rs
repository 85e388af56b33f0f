//! API errors and their one mapping to Prometheus's `errorType` and status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::json;

/// Prometheus's error types (specs/http-api.md §1.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    BadData,
    Execution,
    Timeout,
    Canceled,
    Internal,
    Unavailable,
    NotFound,
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::BadData => "bad_data",
            ErrorType::Execution => "execution",
            ErrorType::Timeout => "timeout",
            ErrorType::Canceled => "canceled",
            ErrorType::Internal => "internal",
            ErrorType::Unavailable => "unavailable",
            ErrorType::NotFound => "not_found",
        }
    }

    /// Prometheus 3's status codes, except `unavailable`, which Hearth
    /// answers with 503 so that clients and load balancers retry.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorType::BadData => StatusCode::BAD_REQUEST,
            ErrorType::Execution => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorType::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            ErrorType::Canceled => StatusCode::from_u16(499).expect("499 is a valid status code"),
            ErrorType::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorType::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorType::NotFound => StatusCode::NOT_FOUND,
        }
    }
}

/// An error answered in Prometheus's JSON envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub error_type: ErrorType,
    pub message: String,
}

impl ApiError {
    pub fn new(error_type: ErrorType, message: impl Into<String>) -> Self {
        Self {
            error_type,
            message: message.into(),
        }
    }

    pub fn bad_data(message: impl Into<String>) -> Self {
        Self::new(ErrorType::BadData, message)
    }

    /// `invalid parameter "<name>": <reason>`, Prometheus's wording.
    pub fn invalid_param(name: &str, reason: impl std::fmt::Display) -> Self {
        Self::bad_data(format!("invalid parameter {name:?}: {reason}"))
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorType::Internal, message)
    }
}

impl From<hearth_storage_api::Error> for ApiError {
    fn from(e: hearth_storage_api::Error) -> Self {
        use hearth_storage_api::Error as E;
        let t = match &e {
            E::BadRequest(_) => ErrorType::BadData,
            E::Unavailable(_) => ErrorType::Unavailable,
            E::Canceled(_) => ErrorType::Canceled,
            E::Corrupt(_) | E::Internal(_) => ErrorType::Internal,
        };
        Self::new(t, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = String::with_capacity(64 + self.message.len());
        body.push_str(r#"{"status":"error","errorType":"#);
        json::write_str(&mut body, self.error_type.as_str(), true);
        body.push_str(r#","error":"#);
        json::write_str(&mut body, &self.message, true);
        body.push('}');
        (
            self.error_type.status(),
            [("content-type", "application/json")],
            body,
        )
            .into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
