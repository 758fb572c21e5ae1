//! The history on a PostgreSQL server, for a team: the same schema and
//! queries as the SQLite file, over a plain connection (`postgres://` URL,
//! no TLS; a loopback, Unix-socket or otherwise trusted network).
//!
//! A campaign is recorded in one transaction, so a client killed while
//! writing leaves nothing: the server rolls the transaction back when the
//! connection drops.

use std::error::Error;

use bytes::BytesMut;
use postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use postgres::{Client, NoTls};

use super::sql::{dollar_placeholders, Connection, Dialect, Row, Value};

/// A connection to a PostgreSQL history.
pub struct Postgres(Client);

impl Postgres {
    /// Connects to the server `url` names, giving up after 10 s unless
    /// the URL's `connect_timeout` says otherwise.
    pub fn connect(url: &str) -> Result<Postgres, String> {
        let mut config: postgres::Config = url.parse().map_err(|error| describe(&error))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(10));
        }
        config.connect(NoTls).map(Postgres).map_err(|error| describe(&error))
    }
}

/// Whether `url` is one the client can use; the parser's complaint if not.
pub fn check_url(url: &str) -> Result<(), String> {
    url.parse::<postgres::Config>().map(|_| ()).map_err(|error| describe(&error))
}

/// `url` with its password left out, for messages.
pub fn without_password(url: &str) -> String {
    let url = match url.split_once('?') {
        Some((base, query)) => {
            let kept: Vec<&str> = query.split('&').filter(|pair| !pair.starts_with("password=")).collect();
            if kept.is_empty() {
                base.to_string()
            } else {
                format!("{base}?{}", kept.join("&"))
            }
        }
        None => url.to_string(),
    };
    let Some((scheme, rest)) = url.split_once("://") else { return url };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(end) => rest.split_at(end),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((credentials, host)) => {
            let user = credentials.split_once(':').map_or(credentials, |(user, _)| user);
            format!("{scheme}://{user}@{host}{tail}")
        }
        None => url.clone(),
    }
}

/// The error with the server's message when there is one.
fn describe(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => match error.source() {
            Some(source) => format!("{error}: {source}"),
            None => error.to_string(),
        },
    }
}

impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(value) => match *ty {
                Type::INT8 => value.to_sql(ty, out),
                Type::INT4 => i32::try_from(*value)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*value)?.to_sql(ty, out),
                Type::FLOAT8 => (*value as f64).to_sql(ty, out),
                Type::BOOL => (*value != 0).to_sql(ty, out),
                _ => Err(format!("an integer cannot be sent as {ty}").into()),
            },
            Value::Real(value) => match *ty {
                Type::FLOAT8 => value.to_sql(ty, out),
                Type::FLOAT4 => (*value as f32).to_sql(ty, out),
                _ => Err(format!("a float cannot be sent as {ty}").into()),
            },
            Value::Text(value) => value.as_str().to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn column(row: &postgres::Row, index: usize) -> Result<Value, postgres::Error> {
    let ty = row.columns()[index].type_().clone();
    Ok(match ty {
        Type::INT8 => row.try_get::<_, Option<i64>>(index)?.map_or(Value::Null, Value::Int),
        Type::INT4 => row.try_get::<_, Option<i32>>(index)?.map_or(Value::Null, |v| Value::Int(v.into())),
        Type::INT2 => row.try_get::<_, Option<i16>>(index)?.map_or(Value::Null, |v| Value::Int(v.into())),
        Type::BOOL => row.try_get::<_, Option<bool>>(index)?.map_or(Value::Null, |v| Value::Int(v.into())),
        Type::FLOAT8 => row.try_get::<_, Option<f64>>(index)?.map_or(Value::Null, Value::Real),
        Type::FLOAT4 => row.try_get::<_, Option<f32>>(index)?.map_or(Value::Null, |v| Value::Real(v.into())),
        _ => row.try_get::<_, Option<String>>(index)?.map_or(Value::Null, Value::Text),
    })
}

fn parameters(params: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|value| value as &(dyn ToSql + Sync)).collect()
}

impl Connection for Postgres {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn batch(&mut self, sql: &str) -> Result<(), String> {
        self.0.batch_execute(sql).map_err(|error| describe(&error))
    }

    fn begin(&mut self) -> Result<(), String> {
        // One writer at a time, as SQLite's BEGIN IMMEDIATE: a lock on a
        // key of phasebench's own, released at the end of the transaction.
        self.batch("BEGIN; SELECT pg_advisory_xact_lock(7075837961616431)")
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, String> {
        self.0.execute(dollar_placeholders(sql).as_str(), &parameters(params)).map_err(|error| describe(&error))
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, String> {
        let rows =
            self.0.query(dollar_placeholders(sql).as_str(), &parameters(params)).map_err(|error| describe(&error))?;
        rows.iter()
            .map(|row| (0..row.len()).map(|index| column(row, index)).collect::<Result<Vec<Value>, _>>().map(Row))
            .collect::<Result<Vec<Row>, _>>()
            .map_err(|error| describe(&error))
    }
}

#[cfg(test)]
mod tests {
    use super::{check_url, without_password};
    use proptest::prelude::*;

    proptest! {
        /// Any text: no panic, and a password placed in the user part or
        /// the query never comes back.
        #[test]
        fn any_url_is_shown_without_its_password(
            user in "[a-z]{1,8}",
            password in "[A-Za-z0-9]{6,12}",
            host in "[a-z0-9.]{1,12}",
            tail in "[ -~]{0,20}",
            noise in "\\PC{0,40}",
        ) {
            let _ = without_password(&noise);
            let _ = check_url(&noise);
            let marked = format!("PW{password}");
            let url = format!("postgres://{user}:{marked}@{host}/db{}", tail.replace(['@', '?', '&', '/'], ""));
            prop_assert!(!without_password(&url).contains(&marked));
            let url = format!("postgresql://{host}/db?user={user}&password={marked}");
            prop_assert!(!without_password(&url).contains(&marked));
        }
    }

    #[test]
    fn a_password_never_reaches_a_message() {
        assert_eq!(without_password("postgres://ann:s3cret@db:5432/perf"), "postgres://ann@db:5432/perf");
        assert_eq!(without_password("postgres://ann@db/perf"), "postgres://ann@db/perf");
        assert_eq!(without_password("postgres://db/perf?user=ann"), "postgres://db/perf?user=ann");
        assert_eq!(without_password("postgresql://a:b:c@h"), "postgresql://a@h");
        assert_eq!(
            without_password("postgres://h/perf?user=ann&password=x&sslmode=disable"),
            "postgres://h/perf?user=ann&sslmode=disable"
        );
    }
}
