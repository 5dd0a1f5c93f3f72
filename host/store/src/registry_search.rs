//! Searching the model registry: registered models and model versions,
//! with MLflow's filters and orderings evaluated in SQL.

use crate::registry::{ModelVersion, RegisteredModel};
use crate::search::{Attribute, Clause, Entity, Op, OrderBy};
use crate::sql::{Backend, Sql};
use crate::tracking::push_comparison;
use crate::{Store, StoreError};

/// The tags of the model (`m`) or version (`v`) a search looks at, as the
/// `FROM … WHERE` of a subquery.
const MODEL_TAGS: &str = "registered_model_tags x WHERE x.name = m.name";
const VERSION_TAGS: &str = "model_version_tags x WHERE x.name = v.name AND x.version = v.version";

impl Store {
    /// One page of registered models matching every clause (on `name` and
    /// tags), in `order` (on `name`, `creation_timestamp` or
    /// `last_updated_timestamp`), then by name.
    pub async fn search_registered_models(
        &self,
        clauses: &[Clause],
        order: &[OrderBy],
        limit: i64,
        offset: i64,
    ) -> Result<Vec<RegisteredModel>, StoreError> {
        let mut q = Sql::new(self.backend, "SELECT m.name FROM registered_models m WHERE ");
        let clauses = prompts_or_models(&mut q, clauses, MODEL_TAGS);
        for clause in clauses {
            q.push(" AND ");
            push_clause(&mut q, self.backend, clause, Attribute::model_column, MODEL_TAGS)?;
        }
        q.push(" ORDER BY ");
        push_order(&mut q, order, Attribute::model_column)?;
        let by_name = order.iter().any(|o| o.entity == Entity::Attribute(Attribute::RunName));
        q.push(if by_name { "1" } else { "m.name" });
        q.push(" LIMIT ").push_bind(limit).push(" OFFSET ").push_bind(offset);
        let names: Vec<String> = q.build_query_scalar()?.fetch_all(&self.pool).await?;
        let mut models = Vec::with_capacity(names.len());
        for name in names {
            match self.registered_model(&name).await {
                Ok(model) => models.push(model),
                // Deleted since the page was read.
                Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(models)
    }

    /// One page of model versions matching every clause (on `name`,
    /// `run_id`, `source_path`, `version_number` and tags), in `order`
    /// (default: last updated first, then name, then newest version).
    pub async fn search_model_versions(
        &self,
        clauses: &[Clause],
        order: &[OrderBy],
        limit: i64,
        offset: i64,
    ) -> Result<Vec<ModelVersion>, StoreError> {
        let mut q = Sql::new(self.backend, "SELECT v.name, v.version FROM model_versions v WHERE ");
        let clauses = prompts_or_models(&mut q, clauses, VERSION_TAGS);
        for clause in clauses {
            q.push(" AND ");
            push_clause(&mut q, self.backend, clause, Attribute::version_column, VERSION_TAGS)?;
        }
        q.push(" ORDER BY ");
        let default = [
            OrderBy {
                entity: Entity::Attribute(Attribute::LastUpdateTime),
                ascending: false,
            },
            OrderBy {
                entity: Entity::Attribute(Attribute::RunName),
                ascending: true,
            },
            OrderBy {
                entity: Entity::Attribute(Attribute::VersionNumber),
                ascending: false,
            },
        ];
        push_order(
            &mut q,
            if order.is_empty() { &default } else { order },
            Attribute::version_column,
        )?;
        q.push("v.name, v.version DESC LIMIT ")
            .push_bind(limit)
            .push(" OFFSET ")
            .push_bind(offset);
        let keys: Vec<(String, i64)> = q.build_query_as()?.fetch_all(&self.pool).await?;
        let mut versions = Vec::with_capacity(keys.len());
        for (name, version) in keys {
            match self.model_version(&name, version).await {
                Ok(v) => versions.push(v),
                Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(versions)
    }
}

/// The tag that marks a prompt (MLflow keeps prompts in the registry).
const PROMPT_TAG: &str = "mlflow.prompt.is_prompt";

/// Prompts and models share the registry: a search returns models only,
/// unless its filter asks for prompts (`tags.`mlflow.prompt.is_prompt` =
/// 'true'`, or `!= 'false'`), as in the reference. Pushes that condition
/// and returns the other clauses.
fn prompts_or_models<'c>(q: &mut Sql<'_>, clauses: &'c [Clause], tags: &str) -> Vec<&'c Clause> {
    use crate::search::Literal;
    let is_prompt_clause = |c: &Clause| matches!(&c.entity, Entity::Tag(k) if k == PROMPT_TAG);
    let prompts = clauses
        .iter()
        .filter(|c| is_prompt_clause(c))
        .any(|c| match (&c.op, &c.value) {
            (Op::Eq, Literal::Text(v)) => v.eq_ignore_ascii_case("true"),
            (Op::Ne, Literal::Text(v)) => v.eq_ignore_ascii_case("false"),
            _ => false,
        });
    q.push(if prompts { "EXISTS" } else { "NOT EXISTS" });
    q.push(format!(" (SELECT 1 FROM {tags} AND x.key = "))
        .push_bind(PROMPT_TAG.to_string())
        .push(" AND x.value = ")
        .push_bind("true".to_string())
        .push(")");
    clauses.iter().filter(|c| !is_prompt_clause(c)).collect()
}

/// One clause: an attribute through `column`, or a tag through the
/// `tags` subquery (`<table> x WHERE <join>`).
fn push_clause(
    q: &mut Sql<'_>,
    backend: Backend,
    clause: &Clause,
    column: fn(Attribute) -> Option<&'static str>,
    tags: &str,
) -> Result<(), StoreError> {
    match &clause.entity {
        Entity::Attribute(a) => {
            let column =
                column(*a).ok_or_else(|| StoreError::Invalid(format!("invalid attribute key {a:?} in the filter")))?;
            push_comparison(q, backend, column, clause);
        }
        Entity::Tag(key) => {
            if matches!(clause.op, Op::IsNull | Op::IsNotNull | Op::In | Op::NotIn) {
                return Err(StoreError::Invalid(format!(
                    "tags cannot be compared with {}",
                    clause.op.sql()
                )));
            }
            q.push(format!("EXISTS (SELECT 1 FROM {tags} AND x.key = "));
            q.push_bind(key.clone()).push(" AND ");
            push_comparison(q, backend, "x.value", clause);
            q.push(")");
        }
        other => {
            return Err(StoreError::Invalid(format!(
                "the registry cannot be searched by {other:?}"
            )))
        }
    }
    Ok(())
}

/// `column ASC|DESC, ` for each item; a key given twice is an error.
fn push_order(
    q: &mut Sql<'_>,
    order: &[OrderBy],
    column: fn(Attribute) -> Option<&'static str>,
) -> Result<(), StoreError> {
    let mut seen = Vec::new();
    for o in order {
        let c = match &o.entity {
            Entity::Attribute(a) => column(*a),
            _ => None,
        }
        .ok_or_else(|| StoreError::Invalid(format!("invalid order_by key {:?}", o.entity)))?;
        if seen.contains(&c) {
            return Err(StoreError::Invalid(format!("order_by names {c} twice")));
        }
        seen.push(c);
        q.push(format!("{c} {}, ", if o.ascending { "ASC" } else { "DESC" }));
    }
    Ok(())
}
