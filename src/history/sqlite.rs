//! The history in one SQLite file (bundled SQLite, no server).
//!
//! The file is opened in rollback-journal mode with `synchronous = FULL`: a
//! campaign is recorded in one transaction, so a process killed while
//! writing leaves the file as it was before that campaign, and the journal
//! is rolled back by the next open.

use std::path::Path;

use rusqlite::types::{ToSqlOutput, ValueRef};

use super::sql::{Connection, Dialect, Row, Value};

/// An open SQLite file.
pub struct Sqlite(rusqlite::Connection);

impl Sqlite {
    /// Opens (or creates) the file, and its folder.
    pub fn open(path: &Path) -> Result<Sqlite, String> {
        if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|error| error.to_string())?;
        }
        let connection = rusqlite::Connection::open(path).map_err(|error| error.to_string())?;
        connection.busy_timeout(std::time::Duration::from_secs(30)).map_err(|error| error.to_string())?;
        connection
            .execute_batch("PRAGMA journal_mode = DELETE; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
            .map_err(|error| error.to_string())?;
        Ok(Sqlite(connection))
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(value) => ToSqlOutput::Borrowed(ValueRef::Integer(*value)),
            Value::Real(value) => ToSqlOutput::Borrowed(ValueRef::Real(*value)),
            Value::Text(value) => ToSqlOutput::Borrowed(ValueRef::Text(value.as_bytes())),
        })
    }
}

impl Connection for Sqlite {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn batch(&mut self, sql: &str) -> Result<(), String> {
        self.0.execute_batch(sql).map_err(|error| error.to_string())
    }

    fn begin(&mut self) -> Result<(), String> {
        self.batch("BEGIN IMMEDIATE")
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, String> {
        let changed = self
            .0
            .prepare_cached(sql)
            .and_then(|mut statement| statement.execute(rusqlite::params_from_iter(params)))
            .map_err(|error| error.to_string())?;
        Ok(changed as u64)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, String> {
        let mut statement = self.0.prepare_cached(sql).map_err(|error| error.to_string())?;
        let columns = statement.column_count();
        let rows = statement
            .query_map(rusqlite::params_from_iter(params), |row| {
                (0..columns)
                    .map(|column| {
                        Ok(match row.get_ref(column)? {
                            ValueRef::Null => Value::Null,
                            ValueRef::Integer(value) => Value::Int(value),
                            ValueRef::Real(value) => Value::Real(value),
                            ValueRef::Text(text) => Value::Text(String::from_utf8_lossy(text).into_owned()),
                            ValueRef::Blob(_) => {
                                return Err(rusqlite::Error::InvalidColumnType(
                                    column,
                                    "a blob, which the history never writes".into(),
                                    rusqlite::types::Type::Blob,
                                ))
                            }
                        })
                    })
                    .collect::<rusqlite::Result<Vec<Value>>>()
                    .map(Row)
            })
            .map_err(|error| error.to_string())?;
        rows.collect::<rusqlite::Result<Vec<Row>>>().map_err(|error| error.to_string())
    }
}
