//! One paging shape for every list: `?limit=&cursor=`, answered with `next_cursor`.

use serde::Deserialize;
use utoipa::IntoParams;

use super::error::{AppError, AppResult};

/// `?limit=&cursor=` of a list endpoint.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1–200. Default 50.
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A validated page request.
#[derive(Clone, Debug)]
pub struct Page {
    pub limit: i64,
    pub cursor: Option<String>,
}

impl Page {
    pub const MAX: i64 = 200;
    pub const DEFAULT: i64 = 50;

    /// Checks the limit (400 `invalid_limit` outside 1–200).
    pub fn parse(limit: Option<i64>, cursor: Option<String>) -> AppResult<Page> {
        let limit = limit.unwrap_or(Page::DEFAULT);
        if !(1..=Page::MAX).contains(&limit) {
            return Err(AppError::bad_request(
                "invalid_limit",
                format!("limit must be between 1 and {}", Page::MAX),
            ));
        }
        Ok(Page { limit, cursor })
    }

    pub fn of(query: PageQuery) -> AppResult<Page> {
        Page::parse(query.limit, query.cursor)
    }

    /// How many rows to fetch: one more than the page, to tell whether another follows.
    pub fn fetch(&self) -> i64 {
        self.limit + 1
    }

    /// Cuts `rows` (fetched with [`Page::fetch`]) to the page and returns the cursor of
    /// the next page, made from the last row kept.
    pub fn finish<T>(&self, rows: &mut Vec<T>, cursor_of: impl Fn(&T) -> String) -> Option<String> {
        if rows.len() as i64 > self.limit {
            rows.truncate(self.limit as usize);
            rows.last().map(cursor_of)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_cuts_the_extra_row_and_names_the_next_cursor() {
        let page = Page::parse(Some(2), None).unwrap();
        let mut rows = vec![1, 2, 3];
        assert_eq!(page.finish(&mut rows, |r| r.to_string()), Some("2".into()));
        assert_eq!(rows, vec![1, 2]);
        let mut last = vec![1];
        assert_eq!(page.finish(&mut last, |r| r.to_string()), None);
        assert!(Page::parse(Some(0), None).is_err());
        assert!(Page::parse(Some(201), None).is_err());
    }
}
