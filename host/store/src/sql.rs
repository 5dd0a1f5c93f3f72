//! The two SQL dialects weft speaks, and a query builder that numbers its
//! placeholders `$1, $2, ...` (which both SQLite and PostgreSQL accept;
//! sqlx's own `QueryBuilder` writes `?` for the `Any` driver, which
//! PostgreSQL refuses).

use std::fmt::Write;

use sqlx::any::AnyArguments;
use sqlx::{Any, Arguments, Encode, Type};

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// One local file; one writer at a time.
    Sqlite,
    /// A shared server; several connections.
    Postgres,
}

impl Backend {
    /// The expression that aggregates `(run_uuid, key, value)` rows of a
    /// subquery aliased `t` into one JSON array of arrays (text).
    pub(crate) fn json_triples(self) -> &'static str {
        match self {
            Backend::Sqlite => "COALESCE(json_group_array(json_array(t.run_uuid, t.key, t.value)), '[]')",
            Backend::Postgres => {
                "COALESCE(json_agg(json_build_array(t.run_uuid, t.key, t.value) ORDER BY t.key)::text, '[]')"
            }
        }
    }
}

/// A statement under construction: SQL text plus its bound values.
pub(crate) struct Sql<'q> {
    text: String,
    args: AnyArguments<'q>,
    count: usize,
    error: Option<sqlx::error::BoxDynError>,
}

impl<'q> Sql<'q> {
    pub(crate) fn new(init: impl Into<String>) -> Self {
        Sql {
            text: init.into(),
            args: AnyArguments::default(),
            count: 0,
            error: None,
        }
    }

    /// Appends SQL text. Never pass a value a user controls here.
    pub(crate) fn push(&mut self, sql: impl std::fmt::Display) -> &mut Self {
        let _ = write!(self.text, "{sql}");
        self
    }

    /// Appends a placeholder and binds `value` to it.
    pub(crate) fn push_bind<T>(&mut self, value: T) -> &mut Self
    where
        T: 'q + Encode<'q, Any> + Type<Any>,
    {
        self.count += 1;
        let _ = write!(self.text, "${}", self.count);
        if let Err(e) = self.args.add(value) {
            self.error.get_or_insert(e);
        }
        self
    }

    /// Appends `a, b, c` with each item bound.
    pub(crate) fn push_list<T, I>(&mut self, items: I) -> &mut Self
    where
        I: IntoIterator<Item = T>,
        T: 'q + Encode<'q, Any> + Type<Any>,
    {
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.push_bind(item);
        }
        self
    }

    /// Appends ` VALUES (...), (...)`, one tuple per item, filled by `row`.
    pub(crate) fn push_values<I, F>(&mut self, items: I, mut row: F) -> &mut Self
    where
        I: IntoIterator,
        F: FnMut(&mut Row<'_, 'q>, I::Item),
    {
        self.push(" VALUES ");
        for (i, item) in items.into_iter().enumerate() {
            self.push(if i > 0 { ", (" } else { "(" });
            row(&mut Row { sql: self, first: true }, item);
            self.push(")");
        }
        self
    }

    /// The finished statement.
    pub(crate) fn build(&mut self) -> Result<sqlx::query::Query<'_, Any, AnyArguments<'_>>, sqlx::Error> {
        if let Some(e) = self.error.take() {
            return Err(sqlx::Error::Encode(e));
        }
        Ok(sqlx::query_with(&self.text, std::mem::take(&mut self.args)))
    }

    /// The finished statement, its rows read as `T`.
    pub(crate) fn build_query_as<T>(
        &mut self,
    ) -> Result<sqlx::query::QueryAs<'_, Any, T, AnyArguments<'_>>, sqlx::Error>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow>,
    {
        if let Some(e) = self.error.take() {
            return Err(sqlx::Error::Encode(e));
        }
        Ok(sqlx::query_as_with(&self.text, std::mem::take(&mut self.args)))
    }

    /// The finished statement, its first column read as `T`.
    pub(crate) fn build_query_scalar<T>(
        &mut self,
    ) -> Result<sqlx::query::QueryScalar<'_, Any, T, AnyArguments<'_>>, sqlx::Error>
    where
        (T,): for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow>,
    {
        if let Some(e) = self.error.take() {
            return Err(sqlx::Error::Encode(e));
        }
        Ok(sqlx::query_scalar_with(&self.text, std::mem::take(&mut self.args)))
    }
}

/// One tuple of a `VALUES` list.
pub(crate) struct Row<'s, 'q> {
    sql: &'s mut Sql<'q>,
    first: bool,
}

impl<'q> Row<'_, 'q> {
    /// Binds the next value of the tuple.
    pub(crate) fn bind<T>(&mut self, value: T) -> &mut Self
    where
        T: 'q + Encode<'q, Any> + Type<Any>,
    {
        if !std::mem::take(&mut self.first) {
            self.sql.push(", ");
        }
        self.sql.push_bind(value);
        self
    }
}
