//! The address of a tax-authority server: the one check every part applies, so the
//! ledger stores exactly what the sync engine will call (an `http://` or `https://` URL
//! with a host, no query or fragment, no trailing slash).

use crate::i18n::Msg;
use crate::Lang;

/// Why a text is not a server address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerProblem {
    /// Not a URL at all (the parser's reason).
    Unparsable(String),
    /// Not `http://` or `https://`.
    Scheme,
    NoHost,
    QueryOrFragment,
    /// Plain `http://` to a host that is not loopback, not allowed for this endpoint.
    PlainHttp,
}

impl ServerProblem {
    pub fn text(&self, lang: Lang) -> String {
        self.msg().text(lang)
    }

    /// The problem as a message of `crates/core/locales`.
    pub fn msg(&self) -> Msg {
        match self {
            ServerProblem::Unparsable(why) => Msg::new("invalid_server-unparsable").arg("why", why),
            ServerProblem::Scheme => Msg::new("invalid_server-scheme"),
            ServerProblem::NoHost => Msg::new("invalid_server-no-host"),
            ServerProblem::QueryOrFragment => Msg::new("invalid_server-query"),
            ServerProblem::PlainHttp => Msg::new("invalid_server-plain-http"),
        }
    }
}

/// The address as it is stored and called: trimmed, parsed, without a trailing slash.
pub fn normalize_server(text: &str) -> Result<String, ServerProblem> {
    let parsed =
        url::Url::parse(text.trim()).map_err(|e| ServerProblem::Unparsable(e.to_string()))?;
    if parsed.scheme() != "http" && parsed.scheme() != "https" {
        return Err(ServerProblem::Scheme);
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(ServerProblem::NoHost);
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(ServerProblem::QueryOrFragment);
    }
    Ok(parsed.as_str().trim_end_matches('/').to_string())
}

/// Whether `url` (normalised) names this machine: `localhost`, 127.0.0.0/8 or `::1`.
pub fn is_loopback(url: &str) -> bool {
    let Ok(parsed) = url::Url::parse(url) else {
        return false;
    };
    match parsed.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// The transport rule (issue 10): `https://` everywhere; plain `http://` only to this
/// machine (the sandbox taxd) or to an endpoint in `allowed_plain`, the addresses the
/// shop allowed on purpose at enrolment (`kaipiao enroll --allow-insecure-http`, for
/// tests). `url` is normalised ([`normalize_server`]).
pub fn check_transport(url: &str, allowed_plain: &[String]) -> Result<(), ServerProblem> {
    if url.starts_with("https://") || is_loopback(url) || allowed_plain.iter().any(|a| a == url) {
        Ok(())
    } else {
        Err(ServerProblem::PlainHttp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_for_this_machine_or_an_endpoint_allowed_on_purpose() {
        for ok in [
            "https://tax.example",
            "http://127.0.0.1:8787",
            "http://127.8.9.10",
            "http://[::1]:8787",
            "http://localhost:8787",
            "http://LOCALHOST",
        ] {
            assert_eq!(check_transport(ok, &[]), Ok(()), "{ok}");
        }
        for refused in [
            "http://tax.example",
            "http://10.0.0.5:8787",
            "http://localhost.example",
            "http://[::2]",
        ] {
            assert_eq!(
                check_transport(refused, &[]),
                Err(ServerProblem::PlainHttp),
                "{refused}"
            );
        }
        assert_eq!(
            check_transport("http://10.0.0.5:8787", &["http://10.0.0.5:8787".into()]),
            Ok(())
        );
        assert_eq!(
            check_transport("http://10.0.0.6:8787", &["http://10.0.0.5:8787".into()]),
            Err(ServerProblem::PlainHttp)
        );
    }

    #[test]
    fn addresses_are_normalised_once_for_everyone() {
        assert_eq!(
            normalize_server(" https://tax.example:8443/ ").unwrap(),
            "https://tax.example:8443"
        );
        assert_eq!(
            normalize_server("http://127.0.0.1:8787").unwrap(),
            "http://127.0.0.1:8787"
        );
        assert_eq!(normalize_server("ftp://x"), Err(ServerProblem::Scheme));
        // What the ledger's own prefix check used to store and the sync engine refused.
        assert_eq!(
            normalize_server("https://x/?a=1"),
            Err(ServerProblem::QueryOrFragment)
        );
        assert!(matches!(
            normalize_server("not a url"),
            Err(ServerProblem::Unparsable(_))
        ));
        assert!(normalize_server("http://exa mple").is_err());
    }
}
