//! `page` / `page_size` pagination and the platform API's list envelope
//! `{"data": [...], "page": 1, "page_size": 20, "total": 123}`.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, FieldError};

/// Default number of items per page.
pub const DEFAULT_PAGE_SIZE: u32 = 20;
/// Largest page a client may ask for.
pub const MAX_PAGE_SIZE: u32 = 100;

/// Pagination as requested in the query string; both fields optional.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1-based page number (default 1).
    #[param(minimum = 1)]
    pub page: Option<u32>,
    /// Items per page (default 20, at most 100).
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<u32>,
}

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    page: u32,
    page_size: u32,
}

impl PageRequest {
    /// Validates bounds: `page ≥ 1`, `1 ≤ page_size ≤ 100`; out of range is a 422 naming
    /// the field, never a silent clamp.
    pub fn new(page: u32, page_size: u32) -> Result<PageRequest, ApiError> {
        let mut details = Vec::new();
        if page == 0 {
            details.push(FieldError::new("page", "must be at least 1"));
        }
        if page_size == 0 || page_size > MAX_PAGE_SIZE {
            details.push(FieldError::new(
                "page_size",
                format!("must be between 1 and {MAX_PAGE_SIZE}"),
            ));
        }
        if details.is_empty() {
            Ok(PageRequest { page, page_size })
        } else {
            Err(ApiError::validation(details))
        }
    }

    pub fn page(&self) -> u32 {
        self.page
    }

    pub fn page_size(&self) -> u32 {
        self.page_size
    }

    /// SQL `LIMIT`.
    pub fn limit(&self) -> i64 {
        i64::from(self.page_size)
    }

    /// SQL `OFFSET`.
    pub fn offset(&self) -> i64 {
        (i64::from(self.page) - 1) * i64::from(self.page_size)
    }

    /// The total a page of `fetched` rows tells without counting: a page with fewer rows
    /// than asked for ends the results, unless it is empty past the first page (the
    /// offset may lie beyond the end, which says nothing of the total). Lets a search skip
    /// its `COUNT(*)` statement.
    pub fn total_of_short_page(&self, fetched: usize) -> Option<u64> {
        let fetched = fetched as u64;
        let short = fetched < u64::from(self.page_size) && (fetched > 0 || self.offset() == 0);
        short.then(|| u64::try_from(self.offset()).unwrap_or(0) + fetched)
    }
}

impl Default for PageRequest {
    fn default() -> Self {
        PageRequest {
            page: 1,
            page_size: DEFAULT_PAGE_SIZE,
        }
    }
}

impl TryFrom<PageQuery> for PageRequest {
    type Error = ApiError;
    fn try_from(query: PageQuery) -> Result<Self, Self::Error> {
        PageRequest::new(
            query.page.unwrap_or(1),
            query.page_size.unwrap_or(DEFAULT_PAGE_SIZE),
        )
    }
}

/// One page of a list, with the total count of matching items.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub page: u32,
    pub page_size: u32,
    pub total: u64,
}

impl<T> Page<T> {
    pub fn new(data: Vec<T>, request: PageRequest, total: u64) -> Page<T> {
        Page {
            data,
            page: request.page,
            page_size: request.page_size,
            total,
        }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            data: self.data.into_iter().map(f).collect(),
            page: self.page,
            page_size: self.page_size,
            total: self.total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_page_tells_the_total() {
        let first = PageRequest::new(1, 20).unwrap();
        let third = PageRequest::new(3, 20).unwrap();
        assert_eq!(first.total_of_short_page(0), Some(0));
        assert_eq!(first.total_of_short_page(7), Some(7));
        assert_eq!(first.total_of_short_page(20), None);
        assert_eq!(third.total_of_short_page(5), Some(45));
        // Empty past the first page: the offset may lie beyond the end.
        assert_eq!(third.total_of_short_page(0), None);
    }

    #[test]
    fn defaults_and_offsets() {
        let request = PageRequest::try_from(PageQuery::default()).unwrap();
        assert_eq!((request.page(), request.page_size()), (1, 20));
        assert_eq!((request.limit(), request.offset()), (20, 0));
        let request = PageRequest::new(3, 100).unwrap();
        assert_eq!(request.offset(), 200);
        let far = PageRequest::new(u32::MAX, 100).unwrap();
        assert_eq!(far.offset(), (i64::from(u32::MAX) - 1) * 100);
    }

    #[test]
    fn out_of_range_is_a_validation_error_per_field() {
        let error = PageRequest::new(0, 101).unwrap_err();
        assert_eq!(error.status(), 422);
        let fields: Vec<_> = error.details.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(fields, vec!["page", "page_size"]);
        assert!(PageRequest::new(1, 0).is_err());
    }

    #[test]
    fn envelope_shape() {
        let page = Page::new(vec![1, 2], PageRequest::default(), 42).map(|n| n * 10);
        assert_eq!(
            serde_json::to_value(&page).unwrap(),
            serde_json::json!({"data": [10, 20], "page": 1, "page_size": 20, "total": 42})
        );
    }
}

/// Bounds of pagination for every possible query.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_page_query_is_accepted_exactly_within_bounds_and_never_overflows(
            page in any::<Option<u32>>(),
            page_size in any::<Option<u32>>(),
        ) {
            let query = PageQuery { page, page_size };
            let effective_page = page.unwrap_or(1);
            let effective_size = page_size.unwrap_or(DEFAULT_PAGE_SIZE);
            match PageRequest::try_from(query) {
                Ok(request) => {
                    prop_assert!(effective_page >= 1);
                    prop_assert!((1..=MAX_PAGE_SIZE).contains(&effective_size));
                    prop_assert_eq!(request.limit(), i64::from(effective_size));
                    // The offset is exact and never negative, even at page u32::MAX.
                    prop_assert_eq!(
                        i128::from(request.offset()),
                        (i128::from(effective_page) - 1) * i128::from(effective_size)
                    );
                    prop_assert!(request.offset() >= 0);
                }
                Err(error) => {
                    prop_assert!(effective_page == 0 || !(1..=MAX_PAGE_SIZE).contains(&effective_size));
                    prop_assert_eq!(error.status(), 422);
                    // Each offending field is named.
                    let fields: Vec<&str> = error.details.iter().map(|d| d.field.as_str()).collect();
                    prop_assert_eq!(fields.contains(&"page"), effective_page == 0);
                    prop_assert_eq!(
                        fields.contains(&"page_size"),
                        !(1..=MAX_PAGE_SIZE).contains(&effective_size)
                    );
                }
            }
        }

        #[test]
        fn pages_partition_the_items(total in 0u64..5_000, page_size in 1u32..=MAX_PAGE_SIZE) {
            // Walking the pages visits every item once: offsets are contiguous.
            let mut next = 0i64;
            let mut page = 1u32;
            while (next as u64) < total {
                let request = PageRequest::new(page, page_size).unwrap();
                prop_assert_eq!(request.offset(), next);
                next += request.limit();
                page += 1;
            }
            prop_assert!(next as u64 >= total && (next as u64) < total + u64::from(page_size) || total == 0);
        }
    }
}
