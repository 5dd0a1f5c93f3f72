//! The two SQL dialects weft speaks, and a query builder that writes each
//! one's placeholders: `$1, $2, ...` for PostgreSQL (sqlx's own
//! `QueryBuilder` writes `?` for the `Any` driver, which PostgreSQL
//! refuses), plain `?` for SQLite (which takes `$N` too, but as named
//! parameters: a statement with hundreds of them, as batched inserts have,
//! became 2.5 times slower).

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
    /// The expression that turns a page of runs (a subquery `p` with the
    /// run columns, in page order) into one JSON array (text): per run the
    /// array of its nine columns, then `[key, value]` params, `[key, value]` tags and
    /// `[key, "value", is_nan, timestamp, step]` latest metrics. Metric
    /// values are decimal text that parses back to the same double (JSON
    /// numbers would go through SQLite's 15-digit formatting).
    pub(crate) fn page_document(self) -> &'static str {
        match self {
            Backend::Sqlite => {
                "COALESCE(json_group_array(json_array(json_array(p.run_uuid, p.experiment_id, p.name, p.user_id, p.status, \
                 p.start_time, p.end_time, p.lifecycle_stage, p.artifact_uri), \
                 json((SELECT json_group_array(json_array(x.key, x.value)) FROM tracking_params x WHERE x.run_uuid = p.run_uuid)), \
                 json((SELECT json_group_array(json_array(x.key, x.value)) FROM tracking_tags x WHERE x.run_uuid = p.run_uuid)), \
                 json((SELECT json_group_array(json_array(x.key, printf('%!.17g', x.value), CAST(x.is_nan AS INTEGER), x.timestamp, x.step)) \
                       FROM tracking_latest_metrics x WHERE x.run_uuid = p.run_uuid)))), '[]')"
            }
            Backend::Postgres => {
                "COALESCE(json_agg(json_build_array(json_build_array(p.run_uuid, p.experiment_id, p.name, p.user_id, p.status, \
                 p.start_time, p.end_time, p.lifecycle_stage, p.artifact_uri), \
                 (SELECT COALESCE(json_agg(json_build_array(x.key, x.value)), '[]'::json) FROM tracking_params x WHERE x.run_uuid = p.run_uuid), \
                 (SELECT COALESCE(json_agg(json_build_array(x.key, x.value)), '[]'::json) FROM tracking_tags x WHERE x.run_uuid = p.run_uuid), \
                 (SELECT COALESCE(json_agg(json_build_array(x.key, x.value::text, CAST(x.is_nan AS INTEGER), x.timestamp, x.step)), '[]'::json) \
                  FROM tracking_latest_metrics x WHERE x.run_uuid = p.run_uuid)))::text, '[]')"
            }
        }
    }
}

/// A statement under construction: SQL text plus its bound values.
pub(crate) struct Sql<'q> {
    backend: Backend,
    text: String,
    args: AnyArguments<'q>,
    count: usize,
    error: Option<sqlx::error::BoxDynError>,
}

impl<'q> Sql<'q> {
    pub(crate) fn new(backend: Backend, init: impl Into<String>) -> Self {
        Sql {
            backend,
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
        match self.backend {
            Backend::Sqlite => self.text.push('?'),
            Backend::Postgres => {
                let _ = write!(self.text, "${}", self.count);
            }
        }
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

    /// Appends another statement's SQL and values (its placeholders
    /// renumbered after this one's).
    pub(crate) fn append(&mut self, other: Sql<'q>) -> &mut Self {
        match self.backend {
            // Positional already.
            Backend::Sqlite => self.text.push_str(&other.text),
            // Renumber `$n` (our SQL text never holds a `$` otherwise).
            Backend::Postgres => {
                let mut rest = other.text.as_str();
                while let Some(at) = rest.find('$') {
                    self.text.push_str(&rest[..at]);
                    let digits = rest[at + 1..].bytes().take_while(u8::is_ascii_digit).count();
                    match rest[at + 1..at + 1 + digits].parse::<usize>() {
                        Ok(n) => {
                            let _ = write!(self.text, "${}", n + self.count);
                        }
                        Err(_) => self.text.push('$'),
                    }
                    rest = &rest[at + 1 + digits..];
                }
                self.text.push_str(rest);
            }
        }
        self.count += other.count;
        if let Some(e) = other.error {
            self.error.get_or_insert(e);
        }
        for value in other.args.values.0 {
            self.args.values.0.push(value);
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

    /// Adds `before VALUE after` as the next element of the tuple: an
    /// expression around a bound value (a subquery, say).
    pub(crate) fn expr<T>(&mut self, before: &str, value: T, after: &str) -> &mut Self
    where
        T: 'q + Encode<'q, Any> + Type<Any>,
    {
        if !std::mem::take(&mut self.first) {
            self.sql.push(", ");
        }
        self.sql.push(before);
        self.sql.push_bind(value);
        self.sql.push(after);
        self
    }
}
