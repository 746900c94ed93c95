//! `Address`: where an envelope is going, in string and binary form.
//!
//! String form, segments in this fixed order, each after the first optional:
//! `/p2p/<peer>/site/<n>/component/<n>/op/<name>`, where `<peer>` is 1–16
//! hex digits (printed as exactly 16, lowercase) and `<n>` is a decimal
//! `u32`. An `op` segment needs a `site` or `component` before it, since an
//! op name alone does not say which graph or component owns it.
//!
//! Binary form: one flag byte (bit 0 site, bit 1 component, bit 2 op, no
//! other bits), the peer as `u64` little-endian, then the present fields in
//! order: site `u32` LE, component `u32` LE, op as one length byte plus
//! UTF-8. Decoding checks every length against the input before reading
//! and never allocates more than [`OP_NAME_CAP`] bytes.
//!
//! Invariants: `parse(a.to_string()) == a` and `decode(encode(a)) == a` for
//! every `Address` that can be built; both parsers reject, with a typed
//! [`AddressError`], anything the printers could not have produced.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ids::{ComponentRef, PeerId, SiteId};

/// Longest op name an address may carry, in bytes.
pub const OP_NAME_CAP: usize = 128;

/// Longest binary form of an address, in bytes.
pub const ADDRESS_BINARY_CAP: usize = 1 + 8 + 4 + 4 + 1 + OP_NAME_CAP;

const FLAG_SITE: u8 = 0b001;
const FLAG_COMPONENT: u8 = 0b010;
const FLAG_OP: u8 = 0b100;

/// A peer, optionally narrowed to a graph site, a component and an op.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Address {
    peer: PeerId,
    site: Option<SiteId>,
    component: Option<ComponentRef>,
    op: Option<String>,
}

/// Why a string or byte sequence is not a valid [`Address`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// The string does not start with `/p2p/<peer>`.
    #[error("address must start with `/p2p/<peer>`; got `{0}`")]
    MissingPeer(String),
    /// The peer is not 1–16 hex digits.
    #[error("peer `{0}` is not 1 to 16 hex digits")]
    BadPeer(String),
    /// A numeric segment is not a decimal `u32`.
    #[error("`{segment}` value `{text}` is not a decimal u32")]
    BadNumber {
        /// The segment keyword (`site` or `component`).
        segment: &'static str,
        /// The text found in its place.
        text: String,
    },
    /// A segment keyword is unknown, repeated, out of order, or has no value.
    #[error("unexpected segment `{0}`; expected /site/<n>, /component/<n>, /op/<name> in that order, each at most once")]
    BadSegment(String),
    /// An op segment with neither a site nor a component to own it.
    #[error("an `/op/<name>` segment needs a `/site/<n>` or `/component/<n>` before it")]
    OpWithoutOwner,
    /// The op name is empty, too long, or has characters outside `[A-Za-z0-9_.:-]`.
    #[error("op name `{name}` must be 1 to {cap} characters from [A-Za-z0-9_.:-]", cap = OP_NAME_CAP)]
    BadOpName {
        /// The offending name (truncated to the cap).
        name: String,
    },
    /// The binary form ended before a field it announced.
    #[error("binary address truncated: needed {needed} bytes, {available} available")]
    Truncated {
        /// Bytes the next field needs.
        needed: usize,
        /// Bytes left in the input.
        available: usize,
    },
    /// The flag byte has bits that no address sets.
    #[error("binary address flag byte {0:#04x} has unknown bits")]
    BadFlags(u8),
}

impl Address {
    /// The whole peer, no site/component/op.
    pub const fn peer(peer: PeerId) -> Self {
        Self {
            peer,
            site: None,
            component: None,
            op: None,
        }
    }

    /// A graph site on `peer` (the data-plane target).
    pub const fn site(peer: PeerId, site: SiteId) -> Self {
        Self {
            peer,
            site: Some(site),
            component: None,
            op: None,
        }
    }

    /// A component op on `peer` (the control-plane target).
    pub fn component_op(
        peer: PeerId,
        component: ComponentRef,
        op: &str,
    ) -> Result<Self, AddressError> {
        check_op_name(op)?;
        Ok(Self {
            peer,
            site: None,
            component: Some(component),
            op: Some(op.to_owned()),
        })
    }

    /// Builds an address from its parts, checking the same rules the
    /// parsers check.
    pub fn from_parts(
        peer: PeerId,
        site: Option<SiteId>,
        component: Option<ComponentRef>,
        op: Option<&str>,
    ) -> Result<Self, AddressError> {
        if let Some(op) = op {
            if site.is_none() && component.is_none() {
                return Err(AddressError::OpWithoutOwner);
            }
            check_op_name(op)?;
        }
        Ok(Self {
            peer,
            site,
            component,
            op: op.map(str::to_owned),
        })
    }

    /// The peer this address points at.
    pub const fn peer_id(&self) -> PeerId {
        self.peer
    }

    /// The graph site, if the address names one.
    pub const fn site_id(&self) -> Option<SiteId> {
        self.site
    }

    /// The component, if the address names one.
    pub const fn component_ref(&self) -> Option<ComponentRef> {
        self.component
    }

    /// The op name, if the address names one.
    pub fn op_name(&self) -> Option<&str> {
        self.op.as_deref()
    }

    /// Length of [`Address::encode`]'s output for this address.
    pub fn encoded_len(&self) -> usize {
        1 + 8
            + self.site.map_or(0, |_| 4)
            + self.component.map_or(0, |_| 4)
            + self.op.as_ref().map_or(0, |op| 1 + op.len())
    }

    /// Appends the binary form to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut flags = 0;
        if self.site.is_some() {
            flags |= FLAG_SITE;
        }
        if self.component.is_some() {
            flags |= FLAG_COMPONENT;
        }
        if self.op.is_some() {
            flags |= FLAG_OP;
        }
        out.push(flags);
        out.extend_from_slice(&self.peer.as_u64().to_le_bytes());
        if let Some(site) = self.site {
            out.extend_from_slice(&site.as_u32().to_le_bytes());
        }
        if let Some(component) = self.component {
            out.extend_from_slice(&component.as_u32().to_le_bytes());
        }
        if let Some(op) = &self.op {
            // The constructors keep op names within OP_NAME_CAP (< 256).
            out.push(op.len() as u8);
            out.extend_from_slice(op.as_bytes());
        }
    }

    /// Reads one binary address from the front of `input`, returning it and
    /// the number of bytes consumed.
    pub fn decode(input: &[u8]) -> Result<(Self, usize), AddressError> {
        let mut reader = Reader { input, at: 0 };
        let flags = reader.take(1)?[0];
        if flags & !(FLAG_SITE | FLAG_COMPONENT | FLAG_OP) != 0 {
            return Err(AddressError::BadFlags(flags));
        }
        let peer = PeerId::new(u64::from_le_bytes(reader.array()?));
        let site = (flags & FLAG_SITE != 0)
            .then(|| reader.array().map(|b| SiteId::new(u32::from_le_bytes(b))))
            .transpose()?;
        let component = (flags & FLAG_COMPONENT != 0)
            .then(|| {
                reader
                    .array()
                    .map(|b| ComponentRef::new(u32::from_le_bytes(b)))
            })
            .transpose()?;
        let op = if flags & FLAG_OP != 0 {
            let len = usize::from(reader.take(1)?[0]);
            let bytes = reader.take(len)?;
            let name = std::str::from_utf8(bytes).map_err(|_| AddressError::BadOpName {
                name: String::from_utf8_lossy(bytes).into_owned(),
            })?;
            Some(name)
        } else {
            None
        };
        let address = Self::from_parts(peer, site, component, op)?;
        Ok((address, reader.at))
    }
}

struct Reader<'a> {
    input: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], AddressError> {
        let available = self.input.len() - self.at;
        if n > available {
            return Err(AddressError::Truncated {
                needed: n,
                available,
            });
        }
        let bytes = &self.input[self.at..self.at + n];
        self.at += n;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], AddressError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
}

fn check_op_name(name: &str) -> Result<(), AddressError> {
    let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-');
    if name.is_empty() || name.len() > OP_NAME_CAP || !name.chars().all(valid_char) {
        let mut shown = name.to_owned();
        if shown.len() > OP_NAME_CAP {
            let mut end = OP_NAME_CAP;
            while !shown.is_char_boundary(end) {
                end -= 1;
            }
            shown.truncate(end);
        }
        return Err(AddressError::BadOpName { name: shown });
    }
    Ok(())
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/p2p/{:016x}", self.peer.as_u64())?;
        if let Some(site) = self.site {
            write!(f, "/site/{}", site.as_u32())?;
        }
        if let Some(component) = self.component {
            write!(f, "/component/{}", component.as_u32())?;
        }
        if let Some(op) = &self.op {
            write!(f, "/op/{op}")?;
        }
        Ok(())
    }
}

impl FromStr for Address {
    type Err = AddressError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let rest = text
            .strip_prefix("/p2p/")
            .ok_or_else(|| AddressError::MissingPeer(text.to_owned()))?;
        let mut segments = rest.split('/');
        let peer_text = segments.next().unwrap_or_default();
        if peer_text.is_empty()
            || peer_text.len() > 16
            || !peer_text.chars().all(|c| c.is_ascii_hexdigit())
        {
            return Err(AddressError::BadPeer(peer_text.to_owned()));
        }
        let peer = u64::from_str_radix(peer_text, 16)
            .map_err(|_| AddressError::BadPeer(peer_text.to_owned()))?;

        let mut site = None;
        let mut component = None;
        let mut op = None;
        // Order rank of the last segment seen: keywords must strictly increase.
        let mut last_rank = 0;
        while let Some(keyword) = segments.next() {
            let rank = match keyword {
                "site" => 1,
                "component" => 2,
                "op" => 3,
                _ => return Err(AddressError::BadSegment(keyword.to_owned())),
            };
            if rank <= last_rank {
                return Err(AddressError::BadSegment(keyword.to_owned()));
            }
            last_rank = rank;
            let value = segments
                .next()
                .ok_or_else(|| AddressError::BadSegment(keyword.to_owned()))?;
            match rank {
                1 => site = Some(SiteId::new(parse_u32("site", value)?)),
                2 => component = Some(ComponentRef::new(parse_u32("component", value)?)),
                _ => op = Some(value),
            }
        }
        Self::from_parts(PeerId::new(peer), site, component, op)
    }
}

fn parse_u32(segment: &'static str, text: &str) -> Result<u32, AddressError> {
    // `u32::from_str` accepts a leading `+`, which the printer never writes.
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AddressError::BadNumber {
            segment,
            text: text.to_owned(),
        });
    }
    text.parse().map_err(|_| AddressError::BadNumber {
        segment,
        text: text.to_owned(),
    })
}

impl TryFrom<String> for Address {
    type Error = AddressError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<Address> for String {
    fn from(address: Address) -> Self {
        address.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Address> {
        let peer = PeerId::new(0x0123_4567_89ab_cdef);
        vec![
            Address::peer(peer),
            Address::site(peer, SiteId::new(3)),
            Address::component_op(peer, ComponentRef::new(9), "train.step").unwrap(),
            Address::from_parts(
                PeerId::new(u64::MAX),
                Some(SiteId::new(u32::MAX)),
                Some(ComponentRef::new(0)),
                Some("a:b-c_d"),
            )
            .unwrap(),
        ]
    }

    #[test]
    fn string_form_matches_the_documented_layout() {
        let a = Address::from_parts(
            PeerId::new(0xab),
            Some(SiteId::new(2)),
            Some(ComponentRef::new(5)),
            Some("fit"),
        )
        .unwrap();
        assert_eq!(
            a.to_string(),
            "/p2p/00000000000000ab/site/2/component/5/op/fit"
        );
    }

    #[test]
    fn string_and_binary_forms_round_trip() {
        for a in samples() {
            assert_eq!(a.to_string().parse::<Address>().unwrap(), a);
            let mut bytes = Vec::new();
            a.encode(&mut bytes);
            assert_eq!(bytes.len(), a.encoded_len());
            let (back, used) = Address::decode(&bytes).unwrap();
            assert_eq!(back, a);
            assert_eq!(used, bytes.len());
        }
    }

    #[test]
    fn decode_reports_consumed_bytes_and_leaves_the_rest() {
        let a = samples().remove(1);
        let mut bytes = Vec::new();
        a.encode(&mut bytes);
        bytes.extend_from_slice(b"tail");
        let (back, used) = Address::decode(&bytes).unwrap();
        assert_eq!(back, a);
        assert_eq!(&bytes[used..], b"tail");
    }

    #[test]
    fn short_peer_hex_is_accepted() {
        let a: Address = "/p2p/ff/site/1".parse().unwrap();
        assert_eq!(a.peer_id(), PeerId::new(255));
        assert_eq!(a.site_id(), Some(SiteId::new(1)));
    }

    #[test]
    fn malformed_strings_get_typed_errors() {
        type Case = (&'static str, fn(&AddressError) -> bool);
        let cases: &[Case] = &[
            ("", |e| matches!(e, AddressError::MissingPeer(_))),
            ("/ip4/1/site/1", |e| {
                matches!(e, AddressError::MissingPeer(_))
            }),
            ("/p2p/", |e| matches!(e, AddressError::BadPeer(_))),
            ("/p2p/xyz", |e| matches!(e, AddressError::BadPeer(_))),
            ("/p2p/00112233445566778", |e| {
                matches!(e, AddressError::BadPeer(_))
            }),
            ("/p2p/1/site/x", |e| {
                matches!(
                    e,
                    AddressError::BadNumber {
                        segment: "site",
                        ..
                    }
                )
            }),
            ("/p2p/1/site/+4", |e| {
                matches!(e, AddressError::BadNumber { .. })
            }),
            ("/p2p/1/site/4294967296", |e| {
                matches!(e, AddressError::BadNumber { .. })
            }),
            ("/p2p/1/site", |e| matches!(e, AddressError::BadSegment(_))),
            ("/p2p/1/component/1/site/1", |e| {
                matches!(e, AddressError::BadSegment(_))
            }),
            ("/p2p/1/site/1/site/2", |e| {
                matches!(e, AddressError::BadSegment(_))
            }),
            ("/p2p/1/foo/1", |e| matches!(e, AddressError::BadSegment(_))),
            ("/p2p/1/op/x", |e| matches!(e, AddressError::OpWithoutOwner)),
            ("/p2p/1/site/1/op/", |e| {
                matches!(e, AddressError::BadOpName { .. })
            }),
            ("/p2p/1/site/1/op/a b", |e| {
                matches!(e, AddressError::BadOpName { .. })
            }),
            ("/p2p/1/site/1/op/a/extra", |e| {
                matches!(e, AddressError::BadSegment(_))
            }),
        ];
        for (text, is_expected) in cases {
            let err = text.parse::<Address>().unwrap_err();
            assert!(is_expected(&err), "`{text}` gave {err:?}");
        }
    }

    #[test]
    fn op_names_are_capped() {
        let long = "a".repeat(OP_NAME_CAP + 1);
        let err = Address::component_op(PeerId::new(1), ComponentRef::new(1), &long).unwrap_err();
        assert!(matches!(err, AddressError::BadOpName { name } if name.len() == OP_NAME_CAP));
        let max = "a".repeat(OP_NAME_CAP);
        assert!(Address::component_op(PeerId::new(1), ComponentRef::new(1), &max).is_ok());
    }

    #[test]
    fn binary_decode_rejects_truncation_and_bad_flags() {
        let a = samples().remove(2);
        let mut bytes = Vec::new();
        a.encode(&mut bytes);
        for cut in 0..bytes.len() {
            let err = Address::decode(&bytes[..cut]).unwrap_err();
            assert!(
                matches!(err, AddressError::Truncated { .. }),
                "cut {cut}: {err:?}"
            );
        }
        let mut bad = bytes.clone();
        bad[0] |= 0x80;
        assert_eq!(
            Address::decode(&bad).unwrap_err(),
            AddressError::BadFlags(bad[0])
        );
        // Op flag without site/component is refused the same way as in text.
        let mut orphan = vec![FLAG_OP];
        orphan.extend_from_slice(&1u64.to_le_bytes());
        orphan.extend_from_slice(&[1, b'x']);
        assert_eq!(
            Address::decode(&orphan).unwrap_err(),
            AddressError::OpWithoutOwner
        );
    }

    #[test]
    fn binary_decode_rejects_non_utf8_op_names() {
        let mut bytes = vec![FLAG_SITE | FLAG_OP];
        bytes.extend_from_slice(&1u64.to_le_bytes());
        bytes.extend_from_slice(&1u32.to_le_bytes());
        bytes.extend_from_slice(&[2, 0xff, 0xfe]);
        assert!(matches!(
            Address::decode(&bytes).unwrap_err(),
            AddressError::BadOpName { .. }
        ));
    }

    #[test]
    fn serde_uses_the_string_form() {
        let a = samples().remove(1);
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, format!("\"{a}\""));
        assert_eq!(serde_json::from_str::<Address>(&json).unwrap(), a);
        assert!(serde_json::from_str::<Address>("\"/p2p/zz\"").is_err());
    }
}
