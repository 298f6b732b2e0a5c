//! Reviews: a listing's buyers rate it (1 to 5) once, with a text. The listing keeps the
//! sum and count of its ratings (updated in the review's transaction), which feed its
//! average and the `rating` filter of browse.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use feria_kernel::{
    DbConn, DbError, Mode, PageRequest, PlatformId, Tenant, Timestamp, UserId, with_conn,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use crate::error::MarketplaceError;
use crate::listing::{self, ListingId};
use crate::purchase;
use crate::schema::{listings, reviews};

feria_kernel::define_id!(
    /// A review of a listing.
    ReviewId,
    "rev"
);

/// A review as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = reviews)]
pub struct Review {
    pub id: ReviewId,
    pub platform_id: PlatformId,
    pub mode: Mode,
    pub listing_id: ListingId,
    pub reviewer_id: UserId,
    pub rating: i64,
    pub text: String,
    pub created_at: Timestamp,
}

impl Review {
    pub fn to_object(&self) -> ReviewObject {
        ReviewObject {
            id: self.id.clone(),
            listing_id: self.listing_id.clone(),
            reviewer_id: self.reviewer_id.clone(),
            rating: self.rating,
            text: self.text.clone(),
            created_at: self.created_at,
        }
    }
}

/// A review as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = Review)]
pub struct ReviewObject {
    #[schema(value_type = String, example = "rev_01HZZ0J7N7P5B4K2V1Q9R8S6T5")]
    pub id: ReviewId,
    #[schema(value_type = String, example = "mkt_01HZZ0J7N7P5B4K2V1Q9R8S6T5")]
    pub listing_id: ListingId,
    pub reviewer_id: UserId,
    /// 1 to 5.
    pub rating: i64,
    pub text: String,
    pub created_at: Timestamp,
}

/// `{"review": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReviewEnvelope {
    pub review: ReviewObject,
}

/// `{"reviews": [...], "page", "page_size", "total"}`, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReviewPage {
    pub reviews: Vec<ReviewObject>,
    pub page: u32,
    pub page_size: u32,
    pub total: u64,
}

/// A new review.
#[derive(Debug, Clone, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReview {
    /// 1 to 5.
    #[validate(range(min = 1, max = 5, message = "must be between 1 and 5"))]
    pub rating: i64,
    /// Up to 5000 characters.
    #[serde(default)]
    #[validate(length(max = 5000, message = "must be at most 5000 characters"))]
    pub text: String,
}

/// Reviews a listing the user bought, once.
pub async fn create(
    conn: &mut DbConn,
    tenant: &Tenant,
    reviewer: &UserId,
    listing_id: &ListingId,
    new: NewReview,
) -> Result<ReviewObject, MarketplaceError> {
    if !(1..=5).contains(&new.rating) {
        return Err(MarketplaceError::invalid(
            "rating",
            "must be between 1 and 5",
        ));
    }
    conn.transaction(async |c| -> Result<ReviewObject, MarketplaceError> {
        listing::visible(c, tenant, reviewer, listing_id).await?;
        if !purchase::has_bought(c, reviewer, listing_id).await? {
            return Err(MarketplaceError::NotAPurchaser);
        }
        let review = Review {
            id: ReviewId::new(),
            platform_id: tenant.platform_id.clone(),
            mode: tenant.mode,
            listing_id: listing_id.clone(),
            reviewer_id: reviewer.clone(),
            rating: new.rating,
            text: new.text.trim().to_owned(),
            created_at: Timestamp::now(),
        };
        let inserted = with_conn!(c, c => {
            diesel::insert_into(reviews::table)
                .values(&review)
                .execute(c)
                .await
        })
        .map_err(DbError::from);
        match inserted {
            Ok(_) => {}
            Err(e) if e.is_unique_violation("reviews") => {
                return Err(MarketplaceError::AlreadyReviewed);
            }
            Err(e) => return Err(e.into()),
        }
        with_conn!(c, c => {
            diesel::update(listings::table.find(listing_id))
                .set((
                    listings::rating_sum.eq(listings::rating_sum + review.rating),
                    listings::rating_count.eq(listings::rating_count + 1),
                ))
                .execute(c)
                .await
        })?;
        Ok(review.to_object())
    })
    .await
}

/// A listing's reviews, newest first, to a user who may see the listing.
pub async fn list(
    conn: &mut DbConn,
    tenant: &Tenant,
    user: &UserId,
    listing_id: &ListingId,
    page: PageRequest,
) -> Result<ReviewPage, MarketplaceError> {
    listing::visible(conn, tenant, user, listing_id).await?;
    let (rows, total): (Vec<Review>, i64) = with_conn!(conn, c => {
        let rows = reviews::table
            .filter(reviews::listing_id.eq(listing_id))
            .order((reviews::created_at.desc(), reviews::id.desc()))
            .limit(page.limit())
            .offset(page.offset())
            .select(Review::as_select())
            .load(c)
            .await?;
        let total = reviews::table
            .filter(reviews::listing_id.eq(listing_id))
            .count()
            .get_result(c)
            .await?;
        Ok::<_, diesel::result::Error>((rows, total))
    })?;
    Ok(ReviewPage {
        reviews: rows.iter().map(Review::to_object).collect(),
        page: page.page(),
        page_size: page.page_size(),
        total: u64::try_from(total).unwrap_or(0),
    })
}
