//! The front door: every request the gateway judges passes here first, whether it
//! is proxied or asked about through forward auth (`/_sso/auth`, `/_sso/verify`).
//! It owns the size limit, the request target and Host checks, the canonical path
//! and the route lookup, so that no entrance can read a request differently from
//! another. No Pingora here: the proxy hands in the raw target and headers, and
//! forward auth the ones a trusted proxy forwarded.
//!
//! The rules (README, "Routing and policy"): a request names a valid host; its
//! path passes `path::canonical`; every reading of the path (judged, literal,
//! folded) lands on the same place, a route or the gateway's own endpoints;
//! a route with `path_params = "refuse"` takes no `;`. The route is judged with
//! the judged reading, and its policy's `paths` must hold for the judged and the
//! folded reading alike.

pub mod host;
pub mod http1;
pub mod path;

use std::sync::Arc;

use crate::config::PathParams;
use crate::metrics::Outcome;
use crate::route::{Route, Router};
pub(crate) use host::{canonical_host, HostRefusal};
pub use path::canonical;
use path::{prefix_matches, prefix_matches_ignore_case};
pub(crate) use path::{PathRefusal, RequestPath};

/// What the front door makes of a request.
#[derive(Debug)]
pub enum Entry<'r, 'p> {
    /// One of the gateway's own endpoints (`{prefix}/…`), by its judged path.
    Endpoint(RequestPath<'p>),
    /// A request to a route, judged by `path`.
    Route {
        route: &'r Arc<Route>,
        path: RequestPath<'p>,
    },
}

/// Why the front door refuses a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The request target and headers are larger than `max_request_header_bytes`.
    HeadersTooLarge,
    Host(HostRefusal),
    Path(PathRefusal),
    /// Two readings of the path reach different routes (`/admin;x/y`, `/ADMIN`
    /// where `/admin` is a route).
    Ambiguous,
    /// A `;` on a route with `path_params = "refuse"`.
    PathParams,
    /// No route covers the host and path.
    NoRoute,
}

impl Refusal {
    pub fn status(self) -> u16 {
        match self {
            Refusal::HeadersTooLarge => 431,
            Refusal::NoRoute => 404,
            _ => 400,
        }
    }

    /// A short, stable name for JSON answers and logs.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::HeadersTooLarge => "headers_too_large",
            Refusal::Host(h) => h.code(),
            Refusal::Path(p) => p.code(),
            Refusal::Ambiguous => "ambiguous_path",
            Refusal::PathParams => "path_parameters",
            Refusal::NoRoute => "no_route",
        }
    }

    pub(crate) fn title(self) -> &'static str {
        match self {
            Refusal::HeadersTooLarge => "Request headers too large",
            Refusal::NoRoute => "Not found",
            _ => "Bad request",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Refusal::HeadersTooLarge => "The request's headers are larger than this gateway accepts. Clearing this site's cookies may help.",
            Refusal::Host(h) => h.message(),
            Refusal::Path(p) => p.message(),
            Refusal::Ambiguous => "The address can be read as more than one application's; write it without `;` parameters, encodings or case changes.",
            Refusal::PathParams => "This application takes no `;` parameters in its addresses.",
            Refusal::NoRoute => "No application is served at this address.",
        }
    }

    pub fn outcome(self) -> Outcome {
        match self {
            Refusal::HeadersTooLarge => Outcome::HeadersTooLarge,
            Refusal::Host(_) => Outcome::BadHost,
            Refusal::NoRoute => Outcome::NoRoute,
            Refusal::Path(_) | Refusal::Ambiguous | Refusal::PathParams => Outcome::BadPath,
        }
    }
}

/// A request as the front door reads it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The request target as sent: origin-form (`/a?b`) or absolute-form
    /// (`http://host/a?b`).
    pub target: &'a [u8],
    /// The `Host` header (or HTTP/2 `:authority`), as sent.
    pub host: Option<&'a str>,
    /// HTTP/1.1 requires a Host; HTTP/1.0 and HTTP/2 (`:authority`) do not.
    pub host_required: bool,
}

/// The gateway's routes and its own path prefix.
#[derive(Debug, Clone, Copy)]
pub struct FrontDoor<'r> {
    pub router: &'r Router,
    /// `server.sso_path_prefix`, e.g. `/_sso`.
    pub sso_prefix: &'r str,
}

/// Where one reading of a path lands.
#[derive(Clone, Copy)]
enum Place<'r> {
    Endpoint,
    Route(&'r Arc<Route>),
    Nowhere,
}

impl PartialEq for Place<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Place::Endpoint, Place::Endpoint) | (Place::Nowhere, Place::Nowhere) => true,
            (Place::Route(a), Place::Route(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl<'r> FrontDoor<'r> {
    /// Reads a request: where it goes and the path it is judged by, or why not.
    pub fn admit<'p>(&self, req: Request<'p>) -> Result<Entry<'r, 'p>, Refusal> {
        let (authority, rest) = split_target(req.target).map_err(Refusal::Path)?;
        let raw_path = path_of(rest);
        let host = match (req.host.or(authority), req.host_required) {
            (Some(h), _) => Some(canonical_host(h).map_err(Refusal::Host)?),
            (None, true) => return Err(Refusal::Host(HostRefusal::Missing)),
            (None, false) => None,
        };
        // An absolute-form target names its own host: it must be the Host's
        // (Pingora checks that they are equal as sent).
        if let (Some(a), Some(h)) = (authority, &host) {
            if canonical_host(a).map_err(Refusal::Host)? != *h {
                return Err(Refusal::Host(HostRefusal::Invalid));
            }
        }
        let path = canonical(raw_path).map_err(Refusal::Path)?;
        let host = host.as_deref();
        let place = self.place(host, path.judged(), false);
        let mut others = [
            path.literal
                .is_some()
                .then(|| self.place(host, path.literal(), false)),
            (path.folded.is_some() || self.router.case_matters(path.folded()))
                .then(|| self.place(host, path.folded(), true)),
        ];
        if others.iter_mut().flatten().any(|p| *p != place) {
            return Err(Refusal::Ambiguous);
        }
        match place {
            Place::Endpoint => Ok(Entry::Endpoint(path)),
            Place::Nowhere => Err(Refusal::NoRoute),
            Place::Route(route) => {
                if route.spec.path_params == PathParams::Refuse && path.has_params() {
                    return Err(Refusal::PathParams);
                }
                Ok(Entry::Route { route, path })
            }
        }
    }

    fn place(&self, host: Option<&str>, path: &str, ignore_case: bool) -> Place<'r> {
        let endpoint = if ignore_case {
            prefix_matches_ignore_case(self.sso_prefix, path)
        } else {
            prefix_matches(self.sso_prefix, path)
        };
        if endpoint {
            return Place::Endpoint;
        }
        match self.router.find(host, path, ignore_case) {
            Some(r) => Place::Route(r),
            None => Place::Nowhere,
        }
    }
}

/// The authority (absolute-form only) and the rest of a request target: the
/// path, query and fragment as sent (for absolute-form, maybe empty or starting
/// with `?`). Absolute-form is `http://` or `https://` (any case).
pub(crate) fn split_target(target: &[u8]) -> Result<(Option<&str>, &[u8]), PathRefusal> {
    if target.first() == Some(&b'/') {
        return Ok((None, target));
    }
    let rest = ["http://", "https://"]
        .iter()
        .find_map(|s| {
            (target.len() >= s.len() && target[..s.len()].eq_ignore_ascii_case(s.as_bytes()))
                .then(|| &target[s.len()..])
        })
        .ok_or(PathRefusal::NotAPath)?;
    let auth_end = rest
        .iter()
        .position(|c| matches!(c, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let authority = std::str::from_utf8(&rest[..auth_end]).map_err(|_| PathRefusal::NotAPath)?;
    Ok((Some(authority), &rest[auth_end..]))
}

/// The path of what follows a target's authority: up to the query or fragment,
/// and `/` when that is empty.
fn path_of(rest: &[u8]) -> &[u8] {
    let end = rest
        .iter()
        .position(|c| matches!(c, b'?' | b'#'))
        .unwrap_or(rest.len());
    if end == 0 {
        b"/"
    } else {
        &rest[..end]
    }
}

/// Whether a request's target and headers exceed `max` bytes (each header counted
/// with 4 bytes of separators, near enough to what the client sent).
pub(crate) fn headers_too_large(target: &[u8], headers: &http::HeaderMap, max: usize) -> bool {
    let size = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum::<usize>()
        + target.len();
    size > max
}

/// A table of the bytes in `ok`, for one-load membership tests on the request path.
const fn byte_set(ok: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < ok.len() {
        t[ok[i] as usize] = true;
        i += 1;
    }
    t
}

#[cfg(test)]
mod tests;
