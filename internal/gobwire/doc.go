// Package gobwire is the gob fast path of the root package's
// GobSerializer: it writes and reads sessions of basic types in the gob
// wire format itself, faster than encoding/gob (Encode, Decode), compares
// a session with a stored encoding without encoding it (Matches), tells a
// canonical encoding from others (Canonical), and rewrites the gob stream
// of any one value as its canonical encoding (Canonicalize). It relies
// only on the parts of the wire format that encoding/gob documents.
//
// A session's canonical gob encoding is plain encoding/gob that any Go
// program decodes, written so that equal values always give the same bytes,
// in every process, whatever that process encoded or registered before:
//
//   - every type definition comes first, one message each, before the one
//     value message; no definition is written inside the value;
//   - user type IDs are numbered from 64 in the order the value first uses
//     them, reading it front to back, a type's own components (in field
//     order) numbered right after it;
//   - map entries are in increasing order of their keys' sort form: the key
//     as gob writes it, with every user type ID written as 0 and no
//     interface byte counts (a map whose keys do not all have different
//     forms, NaNs, has no canonical encoding);
//   - definitions of maps, slices, arrays and structs carry no name;
//   - everything else is as encoding/gob writes it.
package gobwire
