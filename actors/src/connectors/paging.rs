//! Where the next page is, for each pagination style a definition can declare.
//!
//! - Link header (RFC 8288, used by Shopify REST and GitHub): the target of `rel="next"`.
//! - Cursor from the last record (Stripe: `starting_after=<last id>` while `has_more`).
//! - Cursor from the answer (Slack: `cursor=<response_metadata.next_cursor>` until empty).
//! - Page number (Xero, Cin7): the next number while a page is full.

use serde_json::Value;

use super::def::Pagination;
use super::select::{id_text, select};

/// How to ask for the next page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextPage {
    /// No more pages.
    Done,
    /// Fetch this absolute URL as is (its query included).
    Url(String),
    /// Repeat the request with query parameter `.0` set to `.1`.
    Query(String, String),
}

/// What one page looked like.
#[derive(Debug, Clone, Copy)]
pub struct PageSeen<'a> {
    /// The answer body.
    pub body: &'a Value,
    /// The records selected from it (the action's `result`), if an array.
    pub records: Option<&'a [Value]>,
    /// The `Link` header, if any.
    pub link: Option<&'a str>,
    /// The page number just fetched, for page pagination.
    pub page: u64,
}

/// The next page after `seen`.
pub fn next_page(p: &Pagination, seen: PageSeen<'_>) -> NextPage {
    match p {
        Pagination::LinkHeader => seen
            .link
            .and_then(link_next)
            .map_or(NextPage::Done, NextPage::Url),
        Pagination::Cursor {
            param,
            from,
            field,
            has_more,
        } => {
            if let Some(flag) = has_more
                && select(seen.body, flag).and_then(Value::as_bool) != Some(true)
            {
                return NextPage::Done;
            }
            let cursor = if from == "lastItem" {
                seen.records
                    .and_then(|r| r.last())
                    .and_then(|last| select(last, field))
                    .and_then(id_text)
            } else {
                select(seen.body, field).and_then(id_text)
            };
            cursor.map_or(NextPage::Done, |c| NextPage::Query(param.clone(), c))
        }
        Pagination::Page { param, size, .. } => match seen.records {
            Some(r) if !r.is_empty() && r.len() as u64 >= *size => {
                NextPage::Query(param.clone(), (seen.page + 1).to_string())
            }
            _ => NextPage::Done,
        },
    }
}

/// The `rel="next"` target of a `Link` header: `<https://…?page_info=x>; rel="next", <…>;
/// rel="previous"`.
pub fn link_next(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim().to_ascii_lowercase();
            p == "rel=\"next\"" || p == "rel=next"
        });
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then(|| target.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn seen<'a>(
        body: &'a Value,
        records: Option<&'a [Value]>,
        link: Option<&'a str>,
    ) -> PageSeen<'a> {
        PageSeen {
            body,
            records,
            link,
            page: 1,
        }
    }

    #[test]
    fn link_header_as_shopify_and_github_send_it() {
        let h = r#"<https://s.myshopify.com/admin/api/2024-10/orders.json?limit=1&page_info=abc>; rel="next", <https://x/prev>; rel="previous""#;
        assert_eq!(
            next_page(&Pagination::LinkHeader, seen(&json!({}), None, Some(h))),
            NextPage::Url(
                "https://s.myshopify.com/admin/api/2024-10/orders.json?limit=1&page_info=abc"
                    .into()
            )
        );
        let last = r#"<https://api.github.com/x?page=1>; rel="prev", <https://api.github.com/x?page=1>; rel="first""#;
        assert_eq!(
            next_page(&Pagination::LinkHeader, seen(&json!({}), None, Some(last))),
            NextPage::Done
        );
        assert_eq!(
            next_page(&Pagination::LinkHeader, seen(&json!({}), None, None)),
            NextPage::Done
        );
    }

    #[test]
    fn stripe_cursor_from_last_item_while_has_more() {
        let p = Pagination::Cursor {
            param: "starting_after".into(),
            from: "lastItem".into(),
            field: "id".into(),
            has_more: Some("has_more".into()),
        };
        let body =
            json!({"object": "list", "has_more": true, "data": [{"id": "ch_1"}, {"id": "ch_2"}]});
        let data = body["data"].as_array().expect("data").clone();
        assert_eq!(
            next_page(&p, seen(&body, Some(&data), None)),
            NextPage::Query("starting_after".into(), "ch_2".into())
        );
        let body = json!({"has_more": false, "data": [{"id": "ch_3"}]});
        let data = body["data"].as_array().expect("data").clone();
        assert_eq!(
            next_page(&p, seen(&body, Some(&data), None)),
            NextPage::Done
        );
    }

    #[test]
    fn slack_cursor_until_empty_and_pages_until_short() {
        let p = Pagination::Cursor {
            param: "cursor".into(),
            from: "body".into(),
            field: "response_metadata.next_cursor".into(),
            has_more: None,
        };
        let more =
            json!({"ok": true, "response_metadata": {"next_cursor": "dXNlcjpVMEc5V0ZYTlo="}});
        assert_eq!(
            next_page(&p, seen(&more, None, None)),
            NextPage::Query("cursor".into(), "dXNlcjpVMEc5V0ZYTlo=".into())
        );
        let end = json!({"ok": true, "response_metadata": {"next_cursor": ""}});
        assert_eq!(next_page(&p, seen(&end, None, None)), NextPage::Done);

        let p = Pagination::Page {
            param: "page".into(),
            start: 1,
            size: 2,
            size_param: None,
        };
        let full = [json!(1), json!(2)];
        assert_eq!(
            next_page(&p, seen(&json!({}), Some(&full), None)),
            NextPage::Query("page".into(), "2".into())
        );
        assert_eq!(
            next_page(&p, seen(&json!({}), Some(&full[..1]), None)),
            NextPage::Done
        );
    }
}
