//! The HTTP side: authentication, versioning, idempotency keys, timeouts and Stripe's
//! error envelope. The operations live beside it, one file per kind of object.

use std::time::Instant;

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, RequestBuilder, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use feria_kernel::provider_errors::ProviderErrors;

use super::form::Form;
use super::{STRIPE_API_VERSION, StripeApiError, StripeConfig, StripeError};

/// A Stripe REST client. Cheap to clone (one connection pool inside); share one per
/// secret key.
#[derive(Clone)]
pub struct StripeClient {
    http: reqwest::Client,
    base_url: String,
    test_mode: bool,
    /// Where failed calls are counted (the server's metrics); nowhere by default.
    errors: ProviderErrors,
}

impl std::fmt::Debug for StripeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeClient")
            .field("base_url", &self.base_url)
            .field("test_mode", &self.test_mode)
            .finish_non_exhaustive()
    }
}

/// The key Stripe uses to carry out a POST at most once: a retry with the same key and
/// the same parameters returns the first result; with other parameters it is refused
/// (`idempotency_error`). Stripe keeps keys for at least 24 hours.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// 1 to 255 printable ASCII characters (it travels as a header). Derive it from what
    /// makes the operation unique (`settle:{key}:charge:{buyer}`), not from a clock.
    pub fn new(key: impl Into<String>) -> Result<Self, StripeError> {
        let key = key.into();
        if key.is_empty() || key.len() > 255 {
            return Err(StripeError::invalid(
                "idempotency_key",
                "must be 1 to 255 characters long",
            ));
        }
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(StripeError::invalid(
                "idempotency_key",
                "must be printable ASCII without spaces",
            ));
        }
        Ok(IdempotencyKey(key))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A page of a Stripe list (`{"object": "list", "data": [...], "has_more": ...}`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct List<T> {
    pub data: Vec<T>,
    /// More items follow the last one: ask again with `starting_after` its id.
    #[serde(default)]
    pub has_more: bool,
}

impl StripeClient {
    /// Builds the client. Fails on a malformed base URL or header value, never later.
    pub fn new(config: StripeConfig) -> Result<Self, StripeError> {
        let base_url = config.base_url.trim_end_matches('/').to_owned();
        let parsed = reqwest::Url::parse(&base_url)
            .map_err(|e| StripeError::Config(format!("base URL `{base_url}`: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(StripeError::Config(format!(
                "base URL `{base_url}` is not http(s)"
            )));
        }
        if config.secret_key.is_empty() {
            return Err(StripeError::Config("the secret key is empty".to_owned()));
        }
        let mut headers = HeaderMap::new();
        let mut authorization = HeaderValue::from_str(&format!("Bearer {}", config.secret_key))
            .map_err(|_| {
                StripeError::Config("the secret key is not a valid header value".to_owned())
            })?;
        authorization.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, authorization);
        headers.insert(
            "Stripe-Version",
            HeaderValue::from_static(STRIPE_API_VERSION),
        );
        headers.insert(
            reqwest::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        );
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("feria-billing/", env!("CARGO_PKG_VERSION")))
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout.min(config.timeout))
            // Stripe never redirects API calls; following one would resend the key.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| StripeError::Config(e.to_string()))?;
        Ok(StripeClient {
            http,
            base_url,
            test_mode: config.is_test_mode(),
            errors: ProviderErrors::default(),
        })
    }

    /// Counts each failed call in `errors` (provider `stripe`, code
    /// [`StripeError::metric_code`]).
    pub fn with_error_counter(mut self, errors: ProviderErrors) -> Self {
        self.errors = errors;
        self
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Whether the client holds a test-mode key: test and live data never mix.
    pub fn is_test_mode(&self) -> bool {
        self.test_mode
    }

    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &Form,
    ) -> Result<T, StripeError> {
        let mut url = format!("{}{path}", self.base_url);
        if !query.is_empty() {
            url.push('?');
            url.push_str(&query.encode());
        }
        self.send(Method::GET, path, self.http.get(url)).await
    }

    pub(crate) async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        form: &Form,
        idempotency_key: Option<&IdempotencyKey>,
    ) -> Result<T, StripeError> {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base_url))
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form.encode());
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key.as_str());
        }
        self.send(Method::POST, path, request).await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        request: RequestBuilder,
    ) -> Result<T, StripeError> {
        let started = Instant::now();
        let result = match request.send().await {
            Ok(response) => read(response).await,
            Err(error) => Err(transport(error)),
        };
        let elapsed_ms = started.elapsed().as_millis();
        if let Err(error) = &result {
            self.errors.count("stripe", &error.metric_code());
        }
        match &result {
            Ok(_) => tracing::debug!(%method, path, elapsed_ms, "stripe request"),
            Err(StripeError::Api(error)) => tracing::info!(
                %method,
                path,
                elapsed_ms,
                status = error.status,
                kind = %error.kind,
                code = error.code.as_deref().unwrap_or(""),
                request_id = error.request_id.as_deref().unwrap_or(""),
                "stripe request refused"
            ),
            Err(error) => {
                tracing::warn!(%method, path, elapsed_ms, %error, "stripe request failed")
            }
        }
        result
    }
}

/// Checks that an id from a caller is a Stripe id before it goes into a URL path.
pub(crate) fn path_id<'a>(field: &'static str, id: &'a str) -> Result<&'a str, StripeError> {
    if !id.is_empty()
        && id.len() <= 255
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        Ok(id)
    } else {
        Err(StripeError::invalid(
            field,
            format!("`{id}` is not a Stripe id"),
        ))
    }
}

fn transport(error: reqwest::Error) -> StripeError {
    if error.is_timeout() {
        StripeError::Timeout
    } else if error.is_builder() {
        StripeError::Config(error.to_string())
    } else {
        StripeError::Transport(error)
    }
}

async fn read<T: DeserializeOwned>(response: Response) -> Result<T, StripeError> {
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let request_id = header("request-id");
    let should_retry = header("stripe-should-retry").and_then(|v| match v.as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    });
    let body = response.bytes().await.map_err(transport)?;
    if (200..300).contains(&status) {
        return serde_json::from_slice(&body).map_err(|e| StripeError::Decode {
            status,
            message: e.to_string(),
        });
    }
    let envelope = serde_json::from_slice::<Envelope>(&body).ok();
    let error = match envelope {
        Some(Envelope { error }) => StripeApiError {
            status,
            kind: error
                .kind
                .unwrap_or_else(|| default_kind(status).to_owned()),
            code: error.code,
            message: error
                .message
                .unwrap_or_else(|| format!("Stripe answered HTTP {status}")),
            param: error.param,
            decline_code: error.decline_code,
            charge: error.charge,
            request_id,
            should_retry,
        },
        None => StripeApiError {
            status,
            kind: default_kind(status).to_owned(),
            code: None,
            message: format!("Stripe answered HTTP {status} without an error body"),
            param: None,
            decline_code: None,
            charge: None,
            request_id,
            should_retry,
        },
    };
    Err(StripeError::api(error))
}

fn default_kind(status: u16) -> &'static str {
    if status >= 500 {
        "api_error"
    } else {
        "invalid_request_error"
    }
}

#[derive(Deserialize)]
struct Envelope {
    error: EnvelopeError,
}

#[derive(Deserialize)]
struct EnvelopeError {
    #[serde(rename = "type")]
    kind: Option<String>,
    code: Option<String>,
    message: Option<String>,
    param: Option<String>,
    decline_code: Option<String>,
    charge: Option<String>,
}

/// Deserializes an expandable field (an id, or the object with its `id` when expanded,
/// as localstripe always sends `latest_charge`) into the id.
pub(crate) mod expandable {
    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum IdOrObject {
        Id(String),
        Object { id: String },
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<String>, D::Error> {
        Ok(
            Option::<IdOrObject>::deserialize(deserializer)?.map(|value| match value {
                IdOrObject::Id(id) | IdOrObject::Object { id } => id,
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_are_bounded_header_safe_strings() {
        assert!(IdempotencyKey::new("settle:inv_01H:charge:user_01H").is_ok());
        assert!(IdempotencyKey::new("").is_err());
        assert!(IdempotencyKey::new("a".repeat(256)).is_err());
        assert!(IdempotencyKey::new("has space").is_err());
        assert!(IdempotencyKey::new("new\nline").is_err());
    }

    #[test]
    fn path_ids_refuse_anything_but_stripe_ids() {
        assert!(path_id("customer", "cus_NffrFeUfNV2Hib").is_ok());
        assert!(path_id("payment_method", "pm_card_visa").is_ok());
        for bad in ["", "../v1/charges", "cus_1?x=1", "cus 1", "cus_1/refunds"] {
            assert!(path_id("customer", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_bad_base_url_or_empty_key_fails_at_construction() {
        assert!(
            StripeClient::new(StripeConfig::new("sk_test_x").with_base_url("not a url")).is_err()
        );
        assert!(
            StripeClient::new(StripeConfig::new("sk_test_x").with_base_url("ftp://x")).is_err()
        );
        assert!(StripeClient::new(StripeConfig::new("")).is_err());
        let client = StripeClient::new(
            StripeConfig::new("sk_test_x").with_base_url("http://127.0.0.1:8420/"),
        );
        assert_eq!(
            client.map(|c| c.base_url().to_owned()).ok().as_deref(),
            Some("http://127.0.0.1:8420")
        );
    }

    #[test]
    fn expandable_fields_take_an_id_or_an_object() {
        #[derive(Deserialize)]
        struct Holder {
            #[serde(default, with = "expandable")]
            charge: Option<String>,
        }
        let id: Holder = serde_json::from_str(r#"{"charge": "ch_1"}"#).unwrap();
        let object: Holder =
            serde_json::from_str(r#"{"charge": {"id": "ch_2", "amount": 5}}"#).unwrap();
        let null: Holder = serde_json::from_str(r#"{"charge": null}"#).unwrap();
        let absent: Holder = serde_json::from_str("{}").unwrap();
        assert_eq!(id.charge.as_deref(), Some("ch_1"));
        assert_eq!(object.charge.as_deref(), Some("ch_2"));
        assert_eq!(null.charge, None);
        assert_eq!(absent.charge, None);
    }
}
