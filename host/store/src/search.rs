//! The MLflow search grammar: `metrics.acc > 0.9 and params.model = 'cnn'`,
//! and `order_by` clauses. Parsed here, turned into SQL by the tracking
//! queries; nothing from the filter text reaches SQL except as a bound value.

/// What a filter or ordering refers to.
#[derive(Debug, Clone, PartialEq)]
pub enum Entity {
    Metric(String),
    Param(String),
    Tag(String),
    /// A trace's request metadata (`metadata.<key>`).
    Metadata(String),
    /// One of the run's own fields.
    Attribute(Attribute),
}

/// Fields of a run or an experiment that can be searched and sorted on.
/// `name` is [`Attribute::RunName`] for runs and the experiment's (or
/// model's) name elsewhere; each search says which attributes it knows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Attribute {
    RunId,
    RunName,
    UserId,
    Status,
    ArtifactUri,
    StartTime,
    EndTime,
    /// An experiment's id.
    ExperimentId,
    /// An experiment's creation time.
    CreationTime,
    /// An experiment's last update time (a model's or version's
    /// `last_updated_timestamp`).
    LastUpdateTime,
    /// A model version's source (`source_path` in filters).
    SourcePath,
    /// A model version's number.
    VersionNumber,
    /// A trace's id (`request_id`).
    RequestId,
    /// A trace's client request id.
    ClientRequestId,
    /// When a trace started, in milliseconds (`timestamp_ms`; a trace
    /// search also reads `timestamp` so).
    TraceTime,
    /// How long a trace took, in milliseconds (`execution_time_ms`).
    ExecutionTime,
}

impl Attribute {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "run_id" | "run_uuid" => Self::RunId,
            // `name` is what registry and experiment filters say.
            "run_name" | "name" => Self::RunName,
            "user_id" => Self::UserId,
            "status" => Self::Status,
            "artifact_uri" => Self::ArtifactUri,
            "start_time" => Self::StartTime,
            "end_time" | "end_time_ms" => Self::EndTime,
            "request_id" => Self::RequestId,
            "client_request_id" => Self::ClientRequestId,
            "timestamp_ms" => Self::TraceTime,
            "execution_time" | "execution_time_ms" => Self::ExecutionTime,
            "experiment_id" => Self::ExperimentId,
            "creation_time" => Self::CreationTime,
            "last_update_time" => Self::LastUpdateTime,
            "creation_timestamp" => Self::CreationTime,
            "last_updated_timestamp" | "timestamp" => Self::LastUpdateTime,
            "source_path" => Self::SourcePath,
            "version_number" => Self::VersionNumber,
            _ => return None,
        })
    }

    /// The column of a run, on the `tracking_runs r` alias (`None`: not
    /// a run's attribute).
    pub(crate) fn run_column(self) -> Option<&'static str> {
        Some(match self {
            Self::RunId => "r.run_uuid",
            Self::RunName => "r.name",
            Self::UserId => "r.user_id",
            Self::Status => "r.status",
            Self::ArtifactUri => "r.artifact_uri",
            Self::StartTime => "r.start_time",
            Self::EndTime => "r.end_time",
            _ => return None,
        })
    }

    /// The column of an experiment, on the `experiments e` alias.
    pub(crate) fn experiment_column(self) -> Option<&'static str> {
        Some(match self {
            Self::RunName => "e.name",
            Self::ExperimentId => "e.experiment_id",
            Self::CreationTime => "e.creation_time",
            Self::LastUpdateTime => "e.last_update_time",
            _ => return None,
        })
    }

    /// The column of a registered model, on the `registered_models m`
    /// alias; both times sort by the last update, as in the reference.
    pub(crate) fn model_column(self) -> Option<&'static str> {
        Some(match self {
            Self::RunName => "m.name",
            Self::CreationTime | Self::LastUpdateTime => "m.last_updated_timestamp",
            _ => return None,
        })
    }

    /// The column of a model version, on the `model_versions v` alias.
    pub(crate) fn version_column(self) -> Option<&'static str> {
        Some(match self {
            Self::RunName => "v.name",
            Self::RunId => "v.run_id",
            Self::SourcePath => "v.source",
            Self::VersionNumber => "v.version",
            Self::CreationTime => "v.creation_timestamp",
            Self::LastUpdateTime => "v.last_updated_timestamp",
            _ => return None,
        })
    }

    /// The column (an SQL expression) of a trace, on the `traces t` alias;
    /// `name` and `run_id` are a tag and a metadata entry, so `None`.
    pub(crate) fn trace_column(self) -> Option<&'static str> {
        Some(match self {
            Self::RequestId => "t.trace_id",
            Self::ClientRequestId => "t.client_request_id",
            Self::Status => "t.state",
            Self::ExperimentId => "t.experiment_id",
            // `timestamp` parses as the registry's last update time.
            Self::TraceTime | Self::LastUpdateTime => "t.request_time",
            Self::ExecutionTime => "t.execution_duration",
            Self::EndTime => "(t.request_time + t.execution_duration)",
            _ => return None,
        })
    }

    pub(crate) fn is_numeric(self) -> bool {
        matches!(
            self,
            Self::StartTime
                | Self::EndTime
                | Self::CreationTime
                | Self::LastUpdateTime
                | Self::VersionNumber
                | Self::TraceTime
                | Self::ExecutionTime
        )
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Like,
    ILike,
    In,
    NotIn,
    IsNull,
    IsNotNull,
}

impl Op {
    /// The SQL spelling of the operator.
    pub fn sql(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Like | Op::ILike => "LIKE",
            Op::In => "IN",
            Op::NotIn => "NOT IN",
            Op::IsNull => "IS NULL",
            Op::IsNotNull => "IS NOT NULL",
        }
    }
}

/// A literal on the right of an operator.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Number(f64),
    Text(String),
    List(Vec<String>),
    None,
}

/// One `entity op value` comparison; a filter is their conjunction.
#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    pub entity: Entity,
    pub op: Op,
    pub value: Literal,
}

/// One `order_by` item.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderBy {
    pub entity: Entity,
    pub ascending: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Num(f64),
    Op(String),
    LParen,
    RParen,
    Comma,
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' || c == '"' || c == '`' {
            let quote = c;
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(format!("unterminated {quote} string")),
                    Some(&ch) if ch == quote => {
                        if chars.get(i + 1) == Some(&quote) {
                            s.push(quote);
                            i += 2;
                        } else {
                            i += 1;
                            break;
                        }
                    }
                    Some(&ch) => {
                        s.push(ch);
                        i += 1;
                    }
                }
            }
            // Backticks and double quotes quote identifiers (keys with
            // spaces or dots); single quotes are string values.
            tokens.push(if quote == '\'' { Token::Str(s) } else { Token::Ident(s) });
        } else if c == '(' {
            tokens.push(Token::LParen);
            i += 1;
        } else if c == ')' {
            tokens.push(Token::RParen);
            i += 1;
        } else if c == ',' {
            tokens.push(Token::Comma);
            i += 1;
        } else if "<>=!".contains(c) {
            let mut op = c.to_string();
            if chars.get(i + 1) == Some(&'=') {
                op.push('=');
                i += 1;
            }
            i += 1;
            if op == "!" {
                return Err("'!' must be followed by '='".into());
            }
            tokens.push(Token::Op(if op == "==" { "=".into() } else { op }));
        } else if c.is_ascii_digit()
            || ((c == '-' || c == '+' || c == '.') && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit() || *d == '.'))
        {
            let start = i;
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || ".+-".contains(chars[i])) {
                if (chars[i] == '-' || chars[i] == '+') && !matches!(chars[i - 1], 'e' | 'E') {
                    break;
                }
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            tokens.push(Token::Num(
                text.parse().map_err(|_| format!("'{text}' is not a number"))?,
            ));
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || "_.-:/".contains(chars[i])) {
                i += 1;
            }
            tokens.push(Token::Ident(chars[start..i].iter().collect()));
        } else {
            return Err(format!("unexpected character {c:?}"));
        }
    }
    Ok(tokens)
}

/// Splits `metrics.acc` / `params."my key"` into (kind, key); a bare name
/// is an attribute.
fn entity(tokens: &[Token], i: &mut usize) -> Result<Entity, String> {
    let Some(Token::Ident(first)) = tokens.get(*i) else {
        return Err("expected an identifier like metrics.<key>, params.<key>, tags.<key> or an attribute".into());
    };
    *i += 1;
    let (kind, key) = match first.split_once('.') {
        Some((kind, key)) if !key.is_empty() => (kind.to_string(), key.to_string()),
        Some((kind, _)) => {
            // `metrics.` followed by a quoted key.
            let Some(Token::Ident(key)) = tokens.get(*i) else {
                return Err(format!("expected a key after '{first}'"));
            };
            *i += 1;
            (kind.to_string(), key.clone())
        }
        None => ("attributes".to_string(), first.clone()),
    };
    match kind.as_str() {
        "metric" | "metrics" => Ok(Entity::Metric(key)),
        "param" | "params" | "parameter" | "parameters" => Ok(Entity::Param(key)),
        "tag" | "tags" => Ok(Entity::Tag(key)),
        "metadata" | "request_metadata" => Ok(Entity::Metadata(key)),
        "attribute" | "attributes" | "attr" | "run" | "trace" => Attribute::parse(&key)
            .map(Entity::Attribute)
            .ok_or_else(|| format!("'{key}' is not a searchable attribute")),
        other => Err(format!(
            "'{other}' is not metrics, params, tags, metadata or attributes"
        )),
    }
}

/// Parses a filter string (empty: no clauses).
pub fn parse_filter(text: &str) -> Result<Vec<Clause>, String> {
    parse(text, check_clause)
}

/// Parses a trace search's filter: as [`parse_filter`], and `IN` lists
/// also compare a trace's status and ids, as the reference allows (its
/// name is a tag: no `IN`).
pub fn parse_trace_filter(text: &str) -> Result<Vec<Clause>, String> {
    parse(text, |entity, op, value| {
        let listed = matches!(
            entity,
            Entity::Attribute(Attribute::Status | Attribute::RequestId | Attribute::ClientRequestId)
        );
        if listed && matches!((op, value), (Op::In | Op::NotIn, Literal::List(_))) {
            return Ok(());
        }
        check_clause(entity, op, value)
    })
}

fn parse(text: &str, check: impl Fn(&Entity, Op, &Literal) -> Result<(), String>) -> Result<Vec<Clause>, String> {
    let tokens = tokenize(text)?;
    let mut clauses = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let entity = entity(&tokens, &mut i)?;
        let op = match tokens.get(i) {
            Some(Token::Op(op)) => {
                i += 1;
                match op.as_str() {
                    "=" => Op::Eq,
                    "!=" => Op::Ne,
                    ">" => Op::Gt,
                    ">=" => Op::Ge,
                    "<" => Op::Lt,
                    "<=" => Op::Le,
                    other => return Err(format!("unknown operator '{other}'")),
                }
            }
            Some(Token::Ident(word)) => {
                i += 1;
                match word.to_ascii_uppercase().as_str() {
                    "LIKE" => Op::Like,
                    "ILIKE" => Op::ILike,
                    "IN" => Op::In,
                    "IS" => {
                        let not = matches!(tokens.get(i), Some(Token::Ident(w)) if w.eq_ignore_ascii_case("NOT"));
                        if not {
                            i += 1;
                        }
                        match tokens.get(i) {
                            Some(Token::Ident(w)) if w.eq_ignore_ascii_case("NULL") => i += 1,
                            _ => return Err("expected NULL after IS".into()),
                        }
                        if not {
                            Op::IsNotNull
                        } else {
                            Op::IsNull
                        }
                    }
                    "NOT" => match tokens.get(i) {
                        Some(Token::Ident(w)) if w.eq_ignore_ascii_case("IN") => {
                            i += 1;
                            Op::NotIn
                        }
                        _ => return Err("expected IN after NOT".into()),
                    },
                    other => return Err(format!("unknown operator '{other}'")),
                }
            }
            _ => return Err("expected an operator".into()),
        };
        let value = match op {
            Op::IsNull | Op::IsNotNull => Literal::None,
            Op::In | Op::NotIn => {
                if tokens.get(i) != Some(&Token::LParen) {
                    return Err("expected '(' after IN".into());
                }
                i += 1;
                let mut items = Vec::new();
                loop {
                    match tokens.get(i) {
                        Some(Token::Str(s)) => items.push(s.clone()),
                        _ => return Err("IN takes a list of quoted strings".into()),
                    }
                    i += 1;
                    match tokens.get(i) {
                        Some(Token::Comma) => i += 1,
                        Some(Token::RParen) => {
                            i += 1;
                            break;
                        }
                        _ => return Err("expected ',' or ')' in IN list".into()),
                    }
                }
                Literal::List(items)
            }
            _ => {
                let v = match tokens.get(i) {
                    Some(Token::Num(n)) => Literal::Number(*n),
                    Some(Token::Str(s)) => Literal::Text(s.clone()),
                    _ => return Err("expected a number or a quoted string".into()),
                };
                i += 1;
                v
            }
        };
        check(&entity, op, &value)?;
        clauses.push(Clause { entity, op, value });
        match tokens.get(i) {
            None => {}
            Some(Token::Ident(w)) if w.eq_ignore_ascii_case("AND") => {
                i += 1;
                if i >= tokens.len() {
                    return Err("filter ends after AND".into());
                }
            }
            Some(Token::Ident(w)) if w.eq_ignore_ascii_case("OR") => return Err("OR is not supported; use AND".into()),
            Some(other) => return Err(format!("expected AND, found {other:?}")),
        }
    }
    Ok(clauses)
}

fn check_clause(entity: &Entity, op: Op, value: &Literal) -> Result<(), String> {
    let numeric = match entity {
        Entity::Metric(_) => true,
        Entity::Attribute(a) => a.is_numeric(),
        Entity::Param(_) | Entity::Tag(_) | Entity::Metadata(_) => false,
    };
    match (numeric, op, value) {
        (_, Op::IsNull | Op::IsNotNull, _) if !matches!(entity, Entity::Metric(_)) => Ok(()),
        (true, Op::Eq | Op::Ne | Op::Gt | Op::Ge | Op::Lt | Op::Le, Literal::Number(_)) => Ok(()),
        (false, Op::Eq | Op::Ne | Op::Like | Op::ILike, Literal::Text(_)) => Ok(()),
        (false, Op::In | Op::NotIn, Literal::List(_))
            if matches!(entity, Entity::Attribute(Attribute::RunId | Attribute::ExperimentId)) =>
        {
            Ok(())
        }
        (false, Op::Eq | Op::Ne, Literal::Number(_))
            if matches!(entity, Entity::Attribute(Attribute::ExperimentId)) =>
        {
            Ok(())
        }
        (false, Op::Gt | Op::Ge | Op::Lt | Op::Le, Literal::Text(_)) if matches!(entity, Entity::Attribute(_)) => {
            Ok(())
        }
        _ => Err(format!("{entity:?} cannot be compared with {} {value:?}", op.sql())),
    }
}

/// Parses `order_by` items like `metrics.acc DESC`.
pub fn parse_order_by(items: &[String]) -> Result<Vec<OrderBy>, String> {
    items
        .iter()
        .map(|item| {
            let tokens = tokenize(item)?;
            let mut i = 0;
            let entity = entity(&tokens, &mut i)?;
            let ascending = match tokens.get(i) {
                None => true,
                Some(Token::Ident(w)) if w.eq_ignore_ascii_case("ASC") => true,
                Some(Token::Ident(w)) if w.eq_ignore_ascii_case("DESC") => false,
                Some(other) => return Err(format!("expected ASC or DESC, found {other:?}")),
            };
            if tokens.len() > i + 1 {
                return Err(format!("unexpected text after the direction in '{item}'"));
            }
            Ok(OrderBy { entity, ascending })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_grammar() {
        let c = parse_filter(
            "metrics.acc >= 0.9 and params.model = 'cnn' AND tags.`my tag` != 'x' and attributes.status = 'FINISHED'",
        )
        .unwrap();
        assert_eq!(c.len(), 4);
        assert_eq!(
            c[0],
            Clause {
                entity: Entity::Metric("acc".into()),
                op: Op::Ge,
                value: Literal::Number(0.9)
            }
        );
        assert_eq!(c[2].entity, Entity::Tag("my tag".into()));
        assert_eq!(c[3].entity, Entity::Attribute(Attribute::Status));
        let c = parse_filter(
            "params.lr LIKE '0.%' and run_id IN ('a', 'b') and tags.x IS NOT NULL and metrics.loss < -1e-3",
        )
        .unwrap();
        assert_eq!(c[1].value, Literal::List(vec!["a".into(), "b".into()]));
        assert_eq!(c[2].op, Op::IsNotNull);
        assert_eq!(c[3].value, Literal::Number(-1e-3));
        assert!(parse_filter("").unwrap().is_empty());
    }

    #[test]
    fn rejects_what_it_cannot_answer() {
        for bad in [
            "metrics.acc > 'high'",
            "params.x > 3",
            "metrics.a > 1 OR metrics.b > 1",
            "foo.bar = 1",
            "metrics.a >",
            "params.x = 'unterminated",
            "metrics.a > 1 and",
            "nonsense_attribute = 'x'",
        ] {
            assert!(parse_filter(bad).is_err(), "{bad}");
        }
        assert!(!parse_order_by(&["metrics.acc DESC".into()]).unwrap()[0].ascending);
        assert!(parse_order_by(&["metrics.acc sideways".into()]).is_err());
    }
}
