//! Lazy decoding: a list reads only the top-level fields it needs of a stored document.

use super::*;

pub(super) fn parse(body: &RawValue) -> Value {
    serde_json::from_str(body.get()).expect("stored documents are valid JSON")
}

/// What a list reads of one document: the whole, or only some top-level fields.
pub(super) enum Record<'f> {
    Whole(Value),
    /// Values of the fields, in order (`None`: absent).
    Fields(&'f [&'f str], Vec<Option<Value>>),
}

impl<'f> Record<'f> {
    pub(super) fn of(body: &RawValue, fields: &'f [&'f str], whole: bool) -> Self {
        if !whole {
            let mut values = vec![None; fields.len()];
            let mut done = false;
            let pick = Pick {
                fields,
                out: &mut values,
                done: &mut done,
            };
            let read = pick.deserialize(&mut serde_json::Deserializer::from_str(body.get()));
            if read.is_ok() || done {
                return Record::Fields(fields, values);
            }
        }
        Record::Whole(parse(body))
    }

    /// Takes a field's value out.
    pub(super) fn take(&mut self, field: &str) -> Option<Value> {
        match self {
            Record::Whole(value) => value.as_object_mut()?.remove(field),
            Record::Fields(fields, values) => {
                let i = fields.iter().position(|f| *f == field)?;
                values[i].take()
            }
        }
    }

    pub(super) fn get(&self, field: &str) -> Option<&Value> {
        match self {
            Record::Whole(value) => value.get(field),
            Record::Fields(fields, values) => {
                let i = fields.iter().position(|f| *f == field)?;
                values[i].as_ref()
            }
        }
    }

    /// As a JSON object (with only the fields read, if that is all there is).
    pub(super) fn object(&self) -> Cow<'_, Value> {
        match self {
            Record::Whole(value) => Cow::Borrowed(value),
            Record::Fields(fields, values) => Cow::Owned(Value::Object(
                fields
                    .iter()
                    .zip(values)
                    .filter_map(|(f, v)| Some(((*f).to_owned(), v.clone()?)))
                    .collect(),
            )),
        }
    }
}

/// Decodes the top-level `fields` of an object into `out` (in order; `None` when
/// absent), skipping the rest, and stops reading once it has them all (documents are
/// canonical: no key repeats), which ends the decoding with an error after `done` is set.
/// Fails on anything but an object.
pub(super) struct Pick<'f, 'o> {
    pub(super) fields: &'f [&'f str],
    pub(super) out: &'o mut [Option<Value>],
    pub(super) done: &'o mut bool,
}

impl<'de> DeserializeSeed<'de> for Pick<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Pick<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        let mut missing = self.fields.len();
        while missing > 0
            && let Some(Key(key)) = map.next_key()?
        {
            match self.fields.iter().position(|f| *f == key) {
                Some(i) => {
                    if self.out[i].is_none() {
                        missing -= 1;
                    }
                    self.out[i] = Some(map.next_value()?);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        *self.done = true;
        Ok(())
    }
}

/// An object key, borrowed unless it has escapes.
pub(super) struct Key<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> std::result::Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> std::result::Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}
