//! OAuth2 token refresh (RFC 6749 §6) and the client-credentials grant (§4.4) through the
//! `oauth2` crate, carried over the shared reqwest client (the crate's own reqwest feature
//! would pull a second reqwest).
//!
//! A refused refresh (the provider's `invalid_grant` and other error answers) means the
//! tenant must re-authorize: it is reported as an auth error (`isCustomAuthError: true`),
//! never retried. Network failures are retryable.

use std::future::Future;
use std::pin::Pin;

use oauth2::basic::{BasicClient, BasicErrorResponse, BasicTokenResponse};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, HttpRequest, HttpResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl,
    RefreshToken, RequestTokenError, Scope, TokenResponse, TokenUrl,
};
use sluice_actors::connector::ActionError;

use super::credentials::OAuth2Secret;

/// Seconds before expiry at which a token is refreshed.
pub const REFRESH_MARGIN_SECS: u64 = 60;

/// Whether the token must be refreshed now (`now` in Unix seconds).
pub fn needs_refresh(secret: &OAuth2Secret, now: u64) -> bool {
    match (&secret.access_token, secret.expires_at) {
        (None, _) => true,
        (Some(_), Some(exp)) => exp <= now + REFRESH_MARGIN_SECS,
        (Some(_), None) => false,
    }
}

/// The transport error of a token request.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TransportError(String);

type HttpFuture = Pin<Box<dyn Future<Output = Result<HttpResponse, TransportError>> + Send>>;

fn transport(client: reqwest::Client) -> impl Fn(HttpRequest) -> HttpFuture {
    move |req: HttpRequest| {
        let client = client.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let resp = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(|e| TransportError(e.to_string()))?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let bytes = resp
                .bytes()
                .await
                .map_err(|e| TransportError(e.to_string()))?;
            let mut out = HttpResponse::new(bytes.to_vec());
            *out.status_mut() = status;
            *out.headers_mut() = headers;
            Ok(out)
        })
    }
}

/// Obtains a fresh access token: the refresh grant when a refresh token is held, else the
/// client-credentials grant. Returns the updated secret (a rotated refresh token is kept).
///
/// # Errors
/// [`ActionError`] with `auth: true` when the provider refuses, retryable on network errors.
pub async fn refresh(
    client: &reqwest::Client,
    secret: &OAuth2Secret,
    default_token_url: Option<&str>,
    now: u64,
) -> Result<OAuth2Secret, ActionError> {
    let oauth = token_client(secret, default_token_url)?;
    let http = transport(client.clone());
    let result = match (&secret.refresh_token, secret.grant.as_deref()) {
        (Some(rt), None | Some("refresh_token")) => {
            oauth
                .exchange_refresh_token(&RefreshToken::new(rt.clone()))
                .request_async(&http)
                .await
        }
        (_, Some("client_credentials")) => {
            let mut req = oauth.exchange_client_credentials();
            for s in &secret.scopes {
                req = req.add_scope(Scope::new(s.clone()));
            }
            req.request_async(&http).await
        }
        _ => {
            return Err(auth_err(
                "the access token expired and there is no refresh token; re-authorize".into(),
            ));
        }
    };
    let token = result.map_err(|e| token_error(e, "the provider refused the token refresh"))?;
    Ok(with_tokens(secret, &token, now))
}

/// The start of an authorization code flow with PKCE (RFC 7636, S256).
#[derive(Debug)]
pub struct Authorization {
    /// Where to send the user: the provider's authorization endpoint with `client_id`,
    /// `redirect_uri`, `scope`, `state`, `code_challenge` and `code_challenge_method=S256`.
    pub url: String,
    /// The `state` value (random, URL-safe).
    pub state: String,
    /// The PKCE verifier, to be kept server-side until the code comes back.
    pub verifier: String,
}

/// Builds the authorization URL for `client_id` at `auth_url` with a fresh state and PKCE
/// S256 challenge.
///
/// # Errors
/// A message when `auth_url` or `redirect_uri` is not a valid URL.
pub fn authorize(
    auth_url: &str,
    client_id: &str,
    redirect_uri: &str,
    scopes: &[String],
) -> Result<Authorization, String> {
    let client = BasicClient::new(ClientId::new(client_id.to_owned()))
        .set_auth_uri(AuthUrl::new(auth_url.to_owned()).map_err(|e| format!("bad authUrl: {e}"))?)
        .set_redirect_uri(
            RedirectUrl::new(redirect_uri.to_owned())
                .map_err(|e| format!("bad redirectUri: {e}"))?,
        );
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut req = client
        .authorize_url(CsrfToken::new_random)
        .set_pkce_challenge(challenge);
    for s in scopes {
        req = req.add_scope(Scope::new(s.clone()));
    }
    let (url, state) = req.url();
    Ok(Authorization {
        url: url.to_string(),
        state: state.secret().clone(),
        verifier: verifier.secret().clone(),
    })
}

/// Exchanges an authorization `code` (with its PKCE `verifier`) at the secret's token URL (or
/// `default_token_url`) and returns `secret` with the issued tokens (`expires_at` in Unix
/// seconds from `now`).
///
/// # Errors
/// [`ActionError`] with `auth: true` when the provider refuses the code, retryable on network
/// errors.
pub async fn exchange_code(
    client: &reqwest::Client,
    secret: &OAuth2Secret,
    default_token_url: Option<&str>,
    redirect_uri: &str,
    code: &str,
    verifier: &str,
    now: u64,
) -> Result<OAuth2Secret, ActionError> {
    let oauth = token_client(secret, default_token_url)?.set_redirect_uri(
        RedirectUrl::new(redirect_uri.to_owned())
            .map_err(|e| auth_err(format!("bad redirectUri: {e}")))?,
    );
    let http = transport(client.clone());
    let token = oauth
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_owned()))
        .request_async(&http)
        .await
        .map_err(|e| token_error(e, "the provider refused the code"))?;
    let mut next = with_tokens(secret, &token, now);
    next.grant = None;
    Ok(next)
}

/// An auth error: the tenant must re-authorize (`isCustomAuthError`), never retried.
fn auth_err(message: String) -> ActionError {
    ActionError {
        auth: true,
        ..ActionError::new(message, false)
    }
}

/// A client for the token endpoint: the secret's token URL (or `default_token_url`), client
/// id and, when held, client secret sent in the request body.
fn token_client(
    secret: &OAuth2Secret,
    default_token_url: Option<&str>,
) -> Result<
    BasicClient<EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>,
    ActionError,
> {
    let token_url = secret
        .token_url
        .as_deref()
        .or(default_token_url)
        .ok_or_else(|| auth_err("the OAuth2 credential has no tokenUrl".into()))?;
    let client_id = secret
        .client_id
        .clone()
        .ok_or_else(|| auth_err("the OAuth2 credential has no clientId; re-authorize".into()))?;
    let mut oauth = BasicClient::new(ClientId::new(client_id))
        .set_token_uri(
            TokenUrl::new(token_url.to_owned())
                .map_err(|e| auth_err(format!("bad tokenUrl: {e}")))?,
        )
        .set_auth_type(AuthType::RequestBody);
    if let Some(s) = &secret.client_secret {
        oauth = oauth.set_client_secret(ClientSecret::new(s.clone()));
    }
    Ok(oauth)
}

/// A failed token request: the provider's refusal is an auth error carrying its answer under
/// `datasourceDebug` (`refused` prefixes the message); a network failure is retryable.
fn token_error<RE: std::error::Error + 'static>(
    e: RequestTokenError<RE, BasicErrorResponse>,
    refused: &str,
) -> ActionError {
    match e {
        RequestTokenError::ServerResponse(r) => ActionError {
            debug: serde_json::to_value(&r).ok(),
            status: Some(400),
            ..auth_err(format!("{refused}: {}", r.error()))
        },
        RequestTokenError::Request(t) => {
            ActionError::new(format!("token request failed: {t}"), true)
        }
        RequestTokenError::Parse(e, _) => {
            ActionError::new(format!("unreadable token answer: {e}"), false)
        }
        RequestTokenError::Other(m) => ActionError::new(format!("token request: {m}"), false),
    }
}

/// `secret` with the issued tokens; a refresh token not re-issued is kept, `expires_at` is
/// Unix seconds from `now`.
fn with_tokens(secret: &OAuth2Secret, token: &BasicTokenResponse, now: u64) -> OAuth2Secret {
    let mut next = secret.clone();
    next.access_token = Some(token.access_token().secret().clone());
    if let Some(rt) = token.refresh_token() {
        next.refresh_token = Some(rt.secret().clone());
    }
    next.expires_at = token.expires_in().map(|d| now + d.as_secs());
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_is_due_within_the_margin() {
        let s = |exp| OAuth2Secret {
            access_token: Some("a".into()),
            expires_at: exp,
            ..OAuth2Secret::default()
        };
        assert!(needs_refresh(&s(Some(1_000)), 990));
        assert!(!needs_refresh(&s(Some(1_000)), 900));
        assert!(!needs_refresh(&s(None), 1));
        assert!(needs_refresh(&OAuth2Secret::default(), 1));
    }

    #[test]
    fn the_authorization_url_carries_state_and_an_s256_challenge_of_the_verifier() {
        use base64::Engine as _;
        use sha2::Digest as _;
        let a = authorize(
            "https://login.example.com/authorize",
            "cid",
            "https://sluice.example.com/api/v1/oauth/callback",
            &["offline_access".into()],
        )
        .expect("authorize");
        let url = reqwest::Url::parse(&a.url).expect("url");
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["client_id"], "cid");
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["state"], a.state);
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["scope"], "offline_access");
        let expect = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(a.verifier.as_bytes()));
        assert_eq!(q["code_challenge"], expect);
        assert!(authorize("not a url", "cid", "https://x/cb", &[]).is_err());
    }
}
