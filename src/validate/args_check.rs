//! A serde `Serializer` that produces nothing and only checks what `jsonb` cannot store.
//!
//! `serde_json` silently turns NaN and infinities into `null`, so they have to be caught
//! before serialization, while the original values are still visible.

use serde::ser::{self, Serialize};

use super::Rejection;

/// Walks `value` and reports the first NUL character, non-finite float or nesting
/// deeper than `max_depth`.
pub(super) fn check<T: Serialize + ?Sized>(value: &T, max_depth: usize) -> Result<(), Rejection> {
    let mut checker = Checker {
        depth: 0,
        max_depth,
    };
    value.serialize(&mut checker).map_err(|e| e.0)
}

struct Checker {
    depth: usize,
    max_depth: usize,
}

#[derive(Debug)]
struct CheckError(Rejection);

impl std::fmt::Display for CheckError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for CheckError {}

impl ser::Error for CheckError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        CheckError(Rejection::Serialize(msg.to_string()))
    }
}

type Res = Result<(), CheckError>;

impl Checker {
    fn enter(&mut self) -> Res {
        self.depth += 1;
        if self.depth > self.max_depth {
            return Err(CheckError(Rejection::ArgsTooDeep {
                max: self.max_depth,
            }));
        }
        Ok(())
    }

    fn float(v: f64) -> Res {
        if v.is_finite() {
            Ok(())
        } else {
            Err(CheckError(Rejection::NonFiniteNumber))
        }
    }

    fn text(v: &str) -> Res {
        if v.contains('\0') {
            Err(CheckError(Rejection::NulInArgs))
        } else {
            Ok(())
        }
    }
}

impl ser::Serializer for &mut Checker {
    type Ok = ();
    type Error = CheckError;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn serialize_bool(self, _: bool) -> Res {
        Ok(())
    }
    fn serialize_i8(self, _: i8) -> Res {
        Ok(())
    }
    fn serialize_i16(self, _: i16) -> Res {
        Ok(())
    }
    fn serialize_i32(self, _: i32) -> Res {
        Ok(())
    }
    fn serialize_i64(self, _: i64) -> Res {
        Ok(())
    }
    fn serialize_u8(self, _: u8) -> Res {
        Ok(())
    }
    fn serialize_u16(self, _: u16) -> Res {
        Ok(())
    }
    fn serialize_u32(self, _: u32) -> Res {
        Ok(())
    }
    fn serialize_u64(self, _: u64) -> Res {
        Ok(())
    }
    fn serialize_f32(self, v: f32) -> Res {
        Checker::float(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> Res {
        Checker::float(v)
    }
    fn serialize_char(self, v: char) -> Res {
        if v == '\0' {
            Err(CheckError(Rejection::NulInArgs))
        } else {
            Ok(())
        }
    }
    fn serialize_str(self, v: &str) -> Res {
        Checker::text(v)
    }
    fn serialize_bytes(self, _: &[u8]) -> Res {
        // serde_json writes bytes as an array of numbers.
        Ok(())
    }
    fn serialize_none(self) -> Res {
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Res {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Res {
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Res {
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Res {
        Checker::text(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Res {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        value: &T,
    ) -> Res {
        self.enter()?;
        value.serialize(&mut *self)?;
        self.depth -= 1;
        Ok(())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self, CheckError> {
        self.enter()?;
        Ok(self)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self, CheckError> {
        self.enter()?;
        Ok(self)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, CheckError> {
        self.enter()?;
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, CheckError> {
        // `{"Variant": [...]}`: two levels.
        self.enter()?;
        self.enter()?;
        Ok(self)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self, CheckError> {
        self.enter()?;
        Ok(self)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, CheckError> {
        self.enter()?;
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, CheckError> {
        self.enter()?;
        self.enter()?;
        Ok(self)
    }
}

macro_rules! compound {
    ($trait:ident, $method:ident $(, $key:ident)?) => {
        impl<'a> ser::$trait for &'a mut Checker {
            type Ok = ();
            type Error = CheckError;
            fn $method<T: Serialize + ?Sized>(&mut self, $($key: &'static str,)? value: &T) -> Res {
                $(Checker::text($key)?;)?
                value.serialize(&mut **self)
            }
            fn end(self) -> Res {
                self.depth -= 1;
                Ok(())
            }
        }
    };
}

compound!(SerializeSeq, serialize_element);
compound!(SerializeTuple, serialize_element);
compound!(SerializeTupleStruct, serialize_field);
compound!(SerializeStruct, serialize_field, key);

impl ser::SerializeTupleVariant for &mut Checker {
    type Ok = ();
    type Error = CheckError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Res {
        value.serialize(&mut **self)
    }
    fn end(self) -> Res {
        self.depth -= 2;
        Ok(())
    }
}

impl ser::SerializeStructVariant for &mut Checker {
    type Ok = ();
    type Error = CheckError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Res {
        Checker::text(key)?;
        value.serialize(&mut **self)
    }
    fn end(self) -> Res {
        self.depth -= 2;
        Ok(())
    }
}

impl ser::SerializeMap for &mut Checker {
    type Ok = ();
    type Error = CheckError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Res {
        key.serialize(&mut **self)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Res {
        value.serialize(&mut **self)
    }
    fn end(self) -> Res {
        self.depth -= 1;
        Ok(())
    }
}
