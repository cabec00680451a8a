//! Value types stored in the keyspace and their Redis-visible names and encodings.
//!
//! Strings have three representations mirroring Redis's OBJECT ENCODING: `Int` (canonical
//! 64-bit integers, "int"), `Str` (immutable, inline when short: "embstr" up to 44 bytes,
//! "raw" above) and `Raw` (a growable buffer after APPEND/SETRANGE/SETBIT: "raw").
//! The collection types live in their own modules.

use std::borrow::Cow;

use crate::keyspace::SmallBytes;

pub mod dict;
pub mod hash;
pub mod list;
pub mod listpack;
pub mod set;
pub mod zset;

/// Longest string Redis encodes as "embstr".
pub const EMBSTR_MAX_BYTES: usize = 44;

pub enum Value {
    Int(i64),
    Str(SmallBytes),
    Raw(Box<Vec<u8>>),
    List(Box<list::List>),
    Hash(Box<hash::Hash>),
    Set(Box<set::Set>),
    ZSet(Box<zset::ZSet>),
}

impl Value {
    /// A string value as SET stores it: integer encoding when the bytes are a canonical i64.
    pub fn string(s: &[u8]) -> Value {
        if s.len() <= 20 {
            if let Some(n) = cinnabar_protocol::parser::parse_i64(s) {
                return Value::Int(n);
            }
        }
        Value::Str(SmallBytes::new(s))
    }

    pub fn is_string(&self) -> bool {
        matches!(self, Value::Int(_) | Value::Str(_) | Value::Raw(_))
    }

    /// The bytes of a string value; None for other types.
    pub fn string_bytes(&self) -> Option<Cow<'_, [u8]>> {
        match self {
            Value::Int(n) => {
                let mut b = itoa::Buffer::new();
                Some(Cow::Owned(b.format(*n).as_bytes().to_vec()))
            }
            Value::Str(s) => Some(Cow::Borrowed(s.as_bytes())),
            Value::Raw(v) => Some(Cow::Borrowed(v.as_slice())),
            _ => None,
        }
    }

    /// Length in bytes of a string value (STRLEN); None for other types.
    pub fn string_len(&self) -> Option<usize> {
        match self {
            Value::Int(n) => {
                let mut b = itoa::Buffer::new();
                Some(b.format(*n).len())
            }
            Value::Str(s) => Some(s.len()),
            Value::Raw(v) => Some(v.len()),
            _ => None,
        }
    }

    /// Converts a string value into its growable form (APPEND, SETRANGE, SETBIT).
    pub fn make_raw(&mut self) -> Option<&mut Vec<u8>> {
        if !self.is_string() {
            return None;
        }
        if !matches!(self, Value::Raw(_)) {
            let bytes = self
                .string_bytes()
                .map(|c| c.into_owned())
                .unwrap_or_default();
            *self = Value::Raw(Box::new(bytes));
        }
        match self {
            Value::Raw(v) => Some(v),
            _ => None,
        }
    }

    /// TYPE's answer.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Int(_) | Value::Str(_) | Value::Raw(_) => "string",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
        }
    }

    /// OBJECT ENCODING's answer, with Redis's names.
    pub fn encoding_name(&self) -> &'static str {
        match self {
            Value::Int(_) => "int",
            Value::Str(s) if s.len() <= EMBSTR_MAX_BYTES => "embstr",
            Value::Str(_) | Value::Raw(_) => "raw",
            Value::List(l) => l.encoding_name(),
            Value::Hash(h) => h.encoding_name(),
            Value::Set(s) => s.encoding_name(),
            Value::ZSet(z) => z.encoding_name(),
        }
    }

    /// Heap bytes owned by the value beyond its handle.
    pub fn heap_bytes(&self) -> usize {
        match self {
            Value::Int(_) => 0,
            Value::Str(s) => s.heap_bytes(),
            Value::Raw(v) => v.capacity() + std::mem::size_of::<Vec<u8>>(),
            // The boxed handles count too: they are an allocation of their own.
            Value::List(l) => std::mem::size_of::<list::List>() + l.heap_bytes(),
            Value::Hash(h) => std::mem::size_of::<hash::Hash>() + h.heap_bytes(),
            Value::Set(s) => std::mem::size_of::<set::Set>() + s.heap_bytes(),
            Value::ZSet(z) => std::mem::size_of::<zset::ZSet>() + z.heap_bytes(),
        }
    }

    /// Deep copy (COPY command).
    pub fn deep_clone(&self) -> Value {
        match self {
            Value::Int(n) => Value::Int(*n),
            Value::Str(s) => Value::Str(s.clone()),
            Value::Raw(v) => Value::Raw(v.clone()),
            Value::List(l) => Value::List(l.clone()),
            Value::Hash(h) => Value::Hash(h.clone()),
            Value::Set(s) => Value::Set(s.clone()),
            Value::ZSet(z) => Value::ZSet(z.clone()),
        }
    }
}
