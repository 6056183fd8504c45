//! Where logout sends the browser: OneAccess's global logout
//! (`/api/v1/logout?redirect_url=…`), which ends the IdP's own SSO session too. A
//! gateway that only clears its cookie leaves the user logged in at OneAccess, and
//! the next visit silently logs them back in.

use url::Url;

/// The IdP logout URL with the (already validated, absolute) place to come back to.
pub(crate) fn global_logout_url(logout_url: &str, redirect_to: &str) -> String {
    match Url::parse(logout_url) {
        Ok(mut u) => {
            u.query_pairs_mut().append_pair("redirect_url", redirect_to);
            u.into()
        }
        // Validation checked the URL; keep the user's way out working regardless.
        Err(_) => redirect_to.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_url_is_encoded() {
        assert_eq!(
            global_logout_url("https://t.example.com/api/v1/logout", "https://app.example.com/bye?a=1&b=2"),
            "https://t.example.com/api/v1/logout?redirect_url=https%3A%2F%2Fapp.example.com%2Fbye%3Fa%3D1%26b%3D2"
        );
    }
}
