//! Applies a credential to an outgoing request, per its type and the connector's placement:
//! API key (header with optional prefix, or query parameter), HTTP Basic, custom headers,
//! OAuth2 bearer token.

use sluice_actors::connectors::ConnectorDef;

use super::credentials::Auth;

/// `req` with `auth` applied. SMTP credentials add nothing (they are not HTTP).
pub fn apply(
    req: reqwest::RequestBuilder,
    def: &ConnectorDef,
    auth: Option<&Auth>,
) -> reqwest::RequestBuilder {
    match auth {
        None | Some(Auth::Smtp { .. }) => req,
        Some(Auth::ApiKey {
            key,
            location,
            name,
            prefix,
        }) => {
            let placement = def.auth.api_key.as_ref();
            let location = location
                .as_deref()
                .or(placement.map(|p| p.location.as_str()))
                .unwrap_or("header");
            let name = name
                .as_deref()
                .or(placement.map(|p| p.name.as_str()))
                .unwrap_or("Authorization");
            if location == "query" {
                return req.query(&[(name, key)]);
            }
            let prefix = prefix.as_deref().unwrap_or_else(|| match placement {
                Some(p) => p.prefix.as_str(),
                None if name.eq_ignore_ascii_case("authorization") => "Bearer ",
                None => "",
            });
            req.header(name, format!("{prefix}{key}"))
        }
        Some(Auth::Basic { username, password }) => req.basic_auth(username, Some(password)),
        Some(Auth::Custom { headers }) => headers.iter().fold(req, |r, (k, v)| {
            let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            r.header(k.as_str(), v)
        }),
        Some(Auth::OAuth2(s)) => match &s.access_token {
            Some(t) => req.bearer_auth(t),
            None => req,
        },
    }
}
