//! Request extractors that fail in the one error shape: JSON bodies (size limit, media
//! type, syntax, field types, unknown fields, validation rules), query strings and
//! pagination.

use std::ops::Deref;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use validator::Validate;

use feria_kernel::{ApiError, FieldError, KernelCode, PageQuery, PageRequest};

use crate::error::{GatewayCode, HttpError};

/// Largest accepted request body, in bytes (shared by all body extractors).
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// A JSON body, deserialised and then validated.
///
/// Failures: 413 `payload_too_large` past the body limit; 415 `unsupported_media_type`
/// unless the body is `application/json`; 400 `malformed_json` when it is not JSON;
/// 422 `validation_failed` naming the field when a field has the wrong type, is missing,
/// is unknown (request types deny unknown fields) or breaks a validation rule.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T> Json<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for Json<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + Validate + 'static> FromRequest for Json<T> {
    type Error = HttpError;
    type Future = LocalBoxFuture<'static, Result<Self, HttpError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req
            .app_data::<web::Data<BodyLimit>>()
            .map(|l| l.0)
            .unwrap_or(256 * 1024);
        let content_type_ok = is_json_content_type(req);
        let declared_length = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            if declared_length.is_some_and(|length| length > limit) {
                return Err(too_large(limit).into());
            }
            if !content_type_ok {
                return Err(ApiError::coded(
                    KernelCode::UnsupportedMediaType,
                    "the request body must be application/json",
                )
                .into());
            }
            let mut body = web::BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|e| {
                    ApiError::coded(
                        GatewayCode::InvalidBody,
                        format!("cannot read the body: {e}"),
                    )
                })?;
                if body.len() + chunk.len() > limit {
                    return Err(too_large(limit).into());
                }
                body.extend_from_slice(&chunk);
            }
            let value = parse_json::<T>(&body)?;
            refuse_nul_in_json(&body)?;
            value
                .validate()
                .map_err(|errors| with_wire_names(ApiError::from(errors), &body))?;
            Ok(Json(value))
        })
    }
}

/// A JSON body that may be left out: no body (or an empty one) is `None`; a body is
/// checked exactly as [`Json`] checks it.
#[derive(Debug)]
pub struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned + Validate + 'static> FromRequest for OptionalJson<T> {
    type Error = HttpError;
    type Future = LocalBoxFuture<'static, Result<Self, HttpError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let declared_empty = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() == "0");
        let has_body = !declared_empty
            && (req.headers().contains_key(header::CONTENT_LENGTH)
                || req.headers().contains_key(header::TRANSFER_ENCODING));
        if !has_body {
            return Box::pin(std::future::ready(Ok(OptionalJson(None))));
        }
        let json = Json::<T>::from_request(req, payload);
        Box::pin(async move { json.await.map(|Json(value)| OptionalJson(Some(value))) })
    }
}

/// Validation rules report Rust field names (`first_name`); the client sent the wire name
/// (`firstName`). A rule only fires on a field that is present, so the body's own keys say
/// which name the client used: a detail whose first path segment is not a key of the body
/// is renamed to the body's camelCase key of the same name, when there is one.
fn with_wire_names(error: ApiError, body: &[u8]) -> ApiError {
    let Ok(serde_json::Value::Object(object)) = serde_json::from_slice(body) else {
        return error;
    };
    let mut renamed = false;
    let details = error
        .details
        .iter()
        .map(|detail| {
            let split = detail.field.find(['.', '[']).unwrap_or(detail.field.len());
            let (head, rest) = detail.field.split_at(split);
            let camel = snake_to_camel(head);
            if !object.contains_key(head) && camel != head && object.contains_key(&camel) {
                renamed = true;
                FieldError::new(format!("{camel}{rest}"), detail.message.clone())
            } else {
                detail.clone()
            }
        })
        .collect();
    if renamed {
        ApiError::validation(details)
    } else {
        error
    }
}

fn snake_to_camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for ch in name.chars() {
        if ch == '_' && !out.is_empty() {
            upper = true;
        } else if upper {
            out.extend(ch.to_uppercase());
            upper = false;
        } else {
            out.push(ch);
        }
    }
    out
}

fn too_large(limit: usize) -> ApiError {
    ApiError::coded(
        KernelCode::PayloadTooLarge,
        format!("the request body exceeds {limit} bytes"),
    )
}

fn is_json_content_type(req: &HttpRequest) -> bool {
    let Some(value) = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parses JSON, telling a syntax error (400) from a data error (422 on the field's path).
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let deserializer = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let mut field = if path == "." { String::new() } else { path };
                let message = strip_position(&inner.to_string());
                // serde names a missing field only in its message; report it at the field
                // (`items[0].price`), not at the object that lacks it.
                if let Some(missing) = missing_field(&message) {
                    field = if field.is_empty() {
                        missing.to_owned()
                    } else {
                        format!("{field}.{missing}")
                    };
                }
                if field.is_empty() {
                    ApiError::validation(vec![FieldError::new("body", message)])
                } else {
                    ApiError::validation(vec![FieldError::new(field, message)])
                }
            }
            _ => ApiError::coded(
                GatewayCode::MalformedJson,
                format!("the request body is not valid JSON: {}", inner),
            ),
        }
    })
}

const NUL_MESSAGE: &str = "must not contain the NUL character (\\u0000)";

/// Text holding NUL (`\u0000`) is refused with 422 naming the field, on every route and
/// both backends: PostgreSQL cannot store it in `TEXT`, and no client means it. JSON can
/// only carry NUL escaped, so a body without the escape is passed at the cost of one
/// byte search; one with it is walked to name the field (keys included).
fn refuse_nul_in_json(body: &[u8]) -> Result<(), ApiError> {
    if !body.windows(6).any(|w| w == b"\\u0000") {
        return Ok(());
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Ok(());
    };
    match nul_path(&value, String::new()) {
        Some(path) => Err(ApiError::validation(vec![FieldError::new(
            if path.is_empty() {
                "body".to_owned()
            } else {
                path
            },
            NUL_MESSAGE,
        )])),
        None => Ok(()),
    }
}

/// The path (`items[0].name`) of the first string or key holding NUL.
fn nul_path(value: &serde_json::Value, path: String) -> Option<String> {
    match value {
        serde_json::Value::String(text) if text.contains('\0') => Some(path),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_path(item, format!("{path}[{i}]"))),
        serde_json::Value::Object(object) => object.iter().find_map(|(key, item)| {
            let child = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            if key.contains('\0') {
                Some(child)
            } else {
                nul_path(item, child)
            }
        }),
        _ => None,
    }
}

/// A query parameter whose name or value decodes to text holding NUL (`%00`): 422 naming
/// the parameter, as for JSON bodies.
fn refuse_nul_in_query(query: &str) -> Result<(), ApiError> {
    if !query.contains("%00") {
        return Ok(());
    }
    let field = query
        .split('&')
        .find(|pair| pair.contains("%00"))
        .map(|pair| pair.split('=').next().unwrap_or_default())
        .filter(|name| !name.is_empty() && !name.contains('%'))
        .unwrap_or("query");
    Err(ApiError::validation(vec![FieldError::new(
        field,
        NUL_MESSAGE,
    )]))
}

/// The field of serde's "missing field `name`" message.
fn missing_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
}

/// serde_json appends " at line 1 column 12"; the field path says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message.to_owned(),
    }
}

/// A query string, deserialised and validated: 400 `invalid_query` when it does not
/// parse, 422 when a value breaks a rule.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T> Deref for Query<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + Validate> FromRequest for Query<T> {
    type Error = HttpError;
    type Future = std::future::Ready<Result<Self, HttpError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(
            parse_query(req.query_string())
                .map(Query)
                .map_err(HttpError::new),
        )
    }
}

fn parse_query<T: DeserializeOwned + Validate>(query: &str) -> Result<T, ApiError> {
    let value: T = web::Query::<T>::from_query(query)
        .map_err(|e| {
            ApiError::coded(
                GatewayCode::InvalidQuery,
                format!("the query string is invalid: {e}"),
            )
        })?
        .into_inner();
    refuse_nul_in_query(query)?;
    value.validate().map_err(ApiError::from)?;
    Ok(value)
}

/// `page` and `page_size` from the query string, bounds-checked (422 when out of range).
#[derive(Debug, Clone, Copy)]
pub struct Pagination(pub PageRequest);

impl FromRequest for Pagination {
    type Error = HttpError;
    type Future = std::future::Ready<Result<Self, HttpError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let result = web::Query::<PageQuery>::from_query(req.query_string())
            .map_err(|_| {
                ApiError::validation(vec![FieldError::new(
                    "page",
                    "page and page_size must be positive integers",
                )])
            })
            .and_then(|q| PageRequest::try_from(q.into_inner()))
            .map(Pagination)
            .map_err(HttpError::new);
        std::future::ready(result)
    }
}

/// The request's `Idempotency-Key` header, if any: 1 to 255 visible ASCII characters
/// (400 `invalid_idempotency_key` otherwise). Writes that move money accept it: a repeat
/// with the same key and body gets the first result, another body gets 409.
pub fn idempotency_key(req: &actix_web::HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get("Idempotency-Key") else {
        return Ok(None);
    };
    let key = value.to_str().map(str::trim).unwrap_or_default();
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::coded(
            GatewayCode::InvalidIdempotencyKey,
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        ));
    }
    Ok(Some(key.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, Validate)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // only deserialised
    struct Listing {
        #[validate(range(min = 1, message = "must be positive"))]
        price: i64,
        tags: Vec<String>,
    }

    #[test]
    fn syntax_errors_are_400_and_data_errors_name_the_field() {
        let malformed = parse_json::<Listing>(b"{\"price\": ").unwrap_err();
        assert_eq!(
            (malformed.status(), malformed.code.as_ref()),
            (400, "malformed_json")
        );

        let wrong_type = parse_json::<Listing>(br#"{"price": 1, "tags": [1]}"#).unwrap_err();
        assert_eq!(wrong_type.status(), 422);
        assert_eq!(wrong_type.details[0].field, "tags[0]");

        let unknown =
            parse_json::<Listing>(br#"{"price": 1, "tags": [], "extra": true}"#).unwrap_err();
        assert_eq!(unknown.status(), 422);
        assert!(
            unknown.details[0].message.contains("unknown field `extra`"),
            "{unknown:?}"
        );

        let missing = parse_json::<Listing>(br#"{"price": 1}"#).unwrap_err();
        assert_eq!(missing.details[0].field, "tags");
        assert!(missing.details[0].message.contains("missing field `tags`"));

        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Order {
            lines: Vec<Line>,
        }
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Line {
            sku: String,
        }
        let nested = parse_json::<Order>(br#"{"lines": [{}]}"#).unwrap_err();
        assert_eq!(nested.details[0].field, "lines[0].sku");
    }

    #[test]
    fn nul_is_refused_naming_the_field() {
        assert!(refuse_nul_in_json(br#"{"name": "a", "links": []}"#).is_ok());
        // An escaped backslash followed by u0000 is no NUL.
        assert!(refuse_nul_in_json(br#"{"name": "a\\u0000", "links": []}"#).is_ok());
        let nested =
            refuse_nul_in_json(br#"{"name": "a", "links": ["x", "y\u0000"]}"#).unwrap_err();
        assert_eq!(nested.status(), 422);
        assert_eq!(nested.details[0].field, "links[1]");
        let upper = refuse_nul_in_json(br#"{"name": "\U0000"}"#);
        assert!(upper.is_ok(), "JSON escapes are lower-case u only");
        let key = refuse_nul_in_json(br#"{"na\u0000me": "x"}"#).unwrap_err();
        assert_eq!(key.details[0].field, "na\0me");

        assert!(parse_query::<Filter>("email=a%40b").is_ok());
        let query = parse_query::<Filter>("email=a%00b").unwrap_err();
        assert_eq!(
            (query.status(), query.details[0].field.as_str()),
            (422, "email")
        );
    }

    #[derive(Debug, Deserialize, Validate)]
    #[allow(dead_code)]
    struct Filter {
        email: Option<String>,
    }

    #[test]
    fn query_values_are_parsed_then_validated() {
        let invalid = parse_query::<Listing>("price=abc&tags=x").unwrap_err();
        assert_eq!(
            (invalid.status(), invalid.code.as_ref()),
            (400, "invalid_query")
        );
    }

    #[test]
    fn validation_details_use_the_names_the_client_sent() {
        let error = ApiError::validation(vec![
            FieldError::new("first_name", "too long"),
            FieldError::new("url", "must be a URL"),
            FieldError::new("availability[0].start_time", "bad"),
        ]);
        let body = br#"{"firstName": "x", "url": "y", "availability": []}"#;
        let renamed = with_wire_names(error, body);
        let fields: Vec<&str> = renamed.details.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(fields, ["firstName", "url", "availability[0].start_time"]);
        assert_eq!(snake_to_camel("google_calendar_ids"), "googleCalendarIds");
        assert_eq!(snake_to_camel("_private"), "_private");
        // A snake_case key the client really sent stays as it is.
        let snake = ApiError::invalid_field("media_id", "is required");
        let kept = with_wire_names(snake, br#"{"media_id": ""}"#);
        assert_eq!(kept.details[0].field, "media_id");
    }
}
