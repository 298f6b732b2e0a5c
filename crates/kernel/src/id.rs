//! Prefixed ULID identifiers: `user_01HZX6FQJ5N6E7T2M3A4B5C6D7`.
//!
//! A prefix names the type (`plat_`, `user_`, `mkt_` ...); the ULID is random and sortable
//! by creation time, so keys spread across a distributed PostgreSQL and need no sequence.
//! Each id type is a newtype made by [`define_id!`]: the compiler keeps a `UserId` from
//! being passed where a `PlatformId` is expected, and the database stores it as `TEXT`.

/// Why a string is not an id of the expected type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("expected an id starting with `{expected}_`")]
    WrongPrefix { expected: &'static str },
    #[error("the id's ULID part is not valid")]
    InvalidUlid,
}

/// Makes a fresh id string with this prefix.
pub fn new_prefixed(prefix: &str) -> String {
    format!("{prefix}_{}", ulid::Ulid::new())
}

/// Checks that `value` is `<prefix>_<ULID>` and returns it normalised (ULID upper-case).
pub fn parse_prefixed(prefix: &'static str, value: &str) -> Result<String, IdError> {
    let rest = value
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('_'))
        .ok_or(IdError::WrongPrefix { expected: prefix })?;
    let ulid = ulid::Ulid::from_string(rest).map_err(|_| IdError::InvalidUlid)?;
    Ok(format!("{prefix}_{ulid}"))
}

/// Defines a prefixed id newtype with parsing, display, serde, OpenAPI schema and diesel
/// `Text` mapping on both backends.
///
/// ```
/// feria_kernel::define_id!(
///     /// A listing of the template marketplace.
///     ListingId, "mkt"
/// );
/// let id = ListingId::new();
/// assert!(id.as_str().starts_with("mkt_"));
/// assert_eq!(id.as_str().parse::<ListingId>().ok(), Some(id));
/// ```
#[macro_export]
macro_rules! define_id {
    ($(#[$meta:meta])* $name:ident, $prefix:literal) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord,
            ::serde::Serialize,
            $crate::__private::diesel::expression::AsExpression,
            $crate::__private::diesel::deserialize::FromSqlRow,
        )]
        #[diesel(sql_type = $crate::__private::diesel::sql_types::Text)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The type prefix, without the underscore.
            pub const PREFIX: &'static str = $prefix;

            /// A fresh, random id.
            pub fn new() -> Self {
                $name($crate::id::new_prefixed($prefix))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::id::IdError;
            fn from_str(value: &str) -> Result<Self, Self::Err> {
                $crate::id::parse_prefixed($prefix, value).map($name)
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = <String as ::serde::Deserialize>::deserialize(d)?;
                raw.parse().map_err(::serde::de::Error::custom)
            }
        }

        impl $crate::__private::utoipa::PartialSchema for $name {
            fn schema() -> $crate::__private::utoipa::openapi::RefOr<$crate::__private::utoipa::openapi::schema::Schema> {
                $crate::id::id_schema($prefix)
            }
        }

        impl $crate::__private::utoipa::ToSchema for $name {}

        $crate::__impl_text_sql!($name);
    };
}

/// The OpenAPI schema of an id with this prefix.
pub fn id_schema(prefix: &str) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .pattern(Some(format!("^{prefix}_[0-9A-HJKMNP-TV-Z]{{26}}$")))
        .examples([serde_json::Value::String(format!(
            "{prefix}_01HZX6FQJ5N6E7T2M3A4B5C6D7"
        ))])
        .into()
}

/// diesel `ToSql`/`FromSql` for a `String` newtype on both backends.
#[doc(hidden)]
#[macro_export]
macro_rules! __impl_text_sql {
    ($name:ident) => {
        impl
            $crate::__private::diesel::serialize::ToSql<
                $crate::__private::diesel::sql_types::Text,
                $crate::__private::diesel::sqlite::Sqlite,
            > for $name
        {
            fn to_sql<'b>(
                &'b self,
                out: &mut $crate::__private::diesel::serialize::Output<
                    'b,
                    '_,
                    $crate::__private::diesel::sqlite::Sqlite,
                >,
            ) -> $crate::__private::diesel::serialize::Result {
                <String as $crate::__private::diesel::serialize::ToSql<
                    $crate::__private::diesel::sql_types::Text,
                    $crate::__private::diesel::sqlite::Sqlite,
                >>::to_sql(&self.0, out)
            }
        }

        impl
            $crate::__private::diesel::serialize::ToSql<
                $crate::__private::diesel::sql_types::Text,
                $crate::__private::diesel::pg::Pg,
            > for $name
        {
            fn to_sql<'b>(
                &'b self,
                out: &mut $crate::__private::diesel::serialize::Output<
                    'b,
                    '_,
                    $crate::__private::diesel::pg::Pg,
                >,
            ) -> $crate::__private::diesel::serialize::Result {
                <String as $crate::__private::diesel::serialize::ToSql<
                    $crate::__private::diesel::sql_types::Text,
                    $crate::__private::diesel::pg::Pg,
                >>::to_sql(&self.0, out)
            }
        }

        impl<DB>
            $crate::__private::diesel::deserialize::FromSql<
                $crate::__private::diesel::sql_types::Text,
                DB,
            > for $name
        where
            DB: $crate::__private::diesel::backend::Backend,
            String: $crate::__private::diesel::deserialize::FromSql<
                    $crate::__private::diesel::sql_types::Text,
                    DB,
                >,
        {
            fn from_sql(
                bytes: <DB as $crate::__private::diesel::backend::Backend>::RawValue<'_>,
            ) -> $crate::__private::diesel::deserialize::Result<Self> {
                // Stored ids were validated on the way in; reading them back trusts the database.
                <String as $crate::__private::diesel::deserialize::FromSql<
                    $crate::__private::diesel::sql_types::Text,
                    DB,
                >>::from_sql(bytes)
                .map($name)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::define_id!(
        /// For tests.
        SampleId,
        "smp"
    );

    #[test]
    fn new_ids_have_the_prefix_and_a_ulid() {
        let id = SampleId::new();
        let (prefix, ulid) = id.as_str().split_once('_').unwrap();
        assert_eq!(prefix, "smp");
        assert_eq!(ulid.len(), 26);
        assert!(ulid::Ulid::from_string(ulid).is_ok());
    }

    #[test]
    fn parsing_checks_prefix_and_ulid_and_normalises_case() {
        assert_eq!(
            "mkt_01hzz0j7n7p5b4k2v1q9r8s6t5".parse::<SampleId>(),
            Err(IdError::WrongPrefix { expected: "smp" })
        );
        assert_eq!(
            "smp_notaulid".parse::<SampleId>(),
            Err(IdError::InvalidUlid)
        );
        assert_eq!(
            "smp01HZZ0J7N7P5B4K2V1Q9R8S6T5".parse::<SampleId>(),
            Err(IdError::WrongPrefix { expected: "smp" })
        );
        let id: SampleId = "smp_01hzz0j7n7p5b4k2v1q9r8s6t5".parse().unwrap();
        assert_eq!(id.as_str(), "smp_01HZZ0J7N7P5B4K2V1Q9R8S6T5");
    }

    #[test]
    fn serde_round_trips_and_rejects_foreign_prefixes() {
        let id = SampleId::new();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<SampleId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<SampleId>("\"user_01HZZ0J7N7P5B4K2V1Q9R8S6T5\"").is_err());
    }
}
