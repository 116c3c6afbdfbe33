//! Request bodies read into typed values, every rejection a precise
//! problem: not JSON, the wrong shape (which field, why), over the size
//! limit, the wrong content type.

use super::MAX_BODY_BYTES;
use super::problem::Problem;
use axum::extract::rejection::{FormRejection, JsonRejection};
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

/// A JSON body of type `T`.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(JsonBody(v)),
            Err(e) => Err(json_problem(e)),
        }
    }
}

fn json_problem(e: JsonRejection) -> Problem {
    match e {
        JsonRejection::JsonDataError(e) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-body",
            format!(
                "the body does not fit: {}",
                e.body_text().trim_start_matches(
                    "Failed to deserialize the JSON body into the target type: "
                )
            ),
        ),
        JsonRejection::JsonSyntaxError(e) => Problem::bad_request(
            "bad-json",
            format!(
                "the body is not JSON: {}",
                e.body_text()
                    .trim_start_matches("Failed to parse the request body as JSON: ")
            ),
        ),
        JsonRejection::MissingJsonContentType(_) => Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not-json",
            "send the body as JSON, with `Content-Type: application/json`",
        ),
        JsonRejection::BytesRejection(e) => too_large(e.status(), e.body_text()),
        other => Problem::bad_request("bad-body", other.body_text()),
    }
}

fn too_large(status: StatusCode, text: String) -> Problem {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            format!("the body is over the limit of {MAX_BODY_BYTES} bytes"),
        )
        .with("limit", MAX_BODY_BYTES)
    } else {
        Problem::new(status, "bad-body", text)
    }
}

/// An `application/x-www-form-urlencoded` body of type `T`.
pub struct FormBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for FormBody<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        match axum::Form::<T>::from_request(req, state).await {
            Ok(axum::Form(v)) => Ok(FormBody(v)),
            Err(FormRejection::BytesRejection(e)) => Err(too_large(e.status(), e.body_text())),
            Err(FormRejection::InvalidFormContentType(_)) => Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "not-a-form",
                "send the body as a form, with `Content-Type: application/x-www-form-urlencoded`",
            )),
            Err(e) => Err(Problem::bad_request("bad-form", e.body_text())),
        }
    }
}

/// A body as UTF-8 text, whatever its content type (ELB's clients send
/// JSON without always saying so); its parsing is the caller's.
pub struct Text(pub String);

impl<S: Send + Sync> FromRequest<S> for Text {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| too_large(e.status(), e.body_text()))?;
        String::from_utf8(bytes.to_vec())
            .map(Text)
            .map_err(|e| Problem::bad_request("bad-body", format!("the body is not UTF-8: {e}")))
    }
}
