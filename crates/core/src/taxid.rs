//! Taxpayer identification numbers (纳税人识别号): normalisation and validation.
//!
//! SPEC section 2: the 18-character unified social credit code (统一社会信用代码,
//! GB 32100-2015) is checked by its check digit only (no region or organisation-code
//! check); legacy taxpayer numbers of 15, 17 or 20 characters `[0-9A-Z]` are accepted by
//! format. Input is trimmed, upper-cased and inner whitespace removed before checking.

use crate::i18n::Msg;
use crate::Lang;
use std::fmt;

/// The 31 characters of a unified social credit code, in value order (no I, O, S, V, Z).
const ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";

/// GB 32100-2015 weights of the first 17 characters.
const WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

/// Length of a unified social credit code.
const USCC_LEN: usize = 18;

/// Lengths of the legacy taxpayer numbers accepted by format.
const LEGACY_LENS: [usize; 3] = [15, 17, 20];

/// What is wrong with a tax ID. Positions are 1-based, counted in the normalised ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaxIdProblem {
    /// Nothing left after normalisation.
    Empty,
    /// The normalised ID has this many characters, which is none of 15, 17, 18, 20.
    BadLength(usize),
    /// A character that is not allowed at this position.
    BadCharacter { ch: char, position: usize },
    /// The 18th character of a unified social credit code does not match the others.
    BadCheckDigit { expected: char, found: char },
}

impl TaxIdProblem {
    /// A one-line explanation of what is wrong and what is allowed: English when `zh` is
    /// false, Chinese when true.
    pub fn message(&self, zh: bool) -> String {
        self.msg().text(if zh { Lang::Zh } else { Lang::En })
    }

    /// The explanation as a message of `crates/core/locales`.
    pub fn msg(&self) -> Msg {
        match self {
            TaxIdProblem::Empty => Msg::new("invalid_tax_id-empty"),
            TaxIdProblem::BadLength(n) => Msg::new("invalid_tax_id-length").arg("length", *n),
            TaxIdProblem::BadCharacter { ch, position } => if excluded_from_uscc(*ch) {
                Msg::new("invalid_tax_id-uscc-character")
            } else {
                Msg::new("invalid_tax_id-character")
            }
            .arg("char", *ch)
            .arg("position", *position),
            TaxIdProblem::BadCheckDigit { expected, found } => {
                Msg::new("invalid_tax_id-check-digit")
                    .arg("expected", *expected)
                    .arg("found", *found)
            }
        }
    }
}

impl fmt::Display for TaxIdProblem {
    /// The English message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message(false))
    }
}

impl std::error::Error for TaxIdProblem {}

/// A tax ID after normalisation (trimmed, upper-cased, inner whitespace removed).
///
/// Only ASCII letters are upper-cased; any other character is kept as is, so that
/// validation can name it.
pub fn normalize_tax_id(input: &str) -> String {
    input
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// Ok(normalised id) or the problem.
///
/// Checks, in order: not empty; only `[0-9A-Z]`; length 15, 17, 18 or 20; for 18
/// characters, every character in the unified social credit code alphabet and the check
/// digit (GB 32100-2015).
pub fn check_tax_id(input: &str) -> Result<String, TaxIdProblem> {
    let id = normalize_tax_id(input);
    if id.is_empty() {
        return Err(TaxIdProblem::Empty);
    }
    for (i, ch) in id.chars().enumerate() {
        if !(ch.is_ascii_digit() || ch.is_ascii_uppercase()) {
            return Err(TaxIdProblem::BadCharacter {
                ch,
                position: i + 1,
            });
        }
    }
    // Only ASCII from here on: bytes are characters.
    let len = id.len();
    if LEGACY_LENS.contains(&len) {
        return Ok(id);
    }
    if len != USCC_LEN {
        return Err(TaxIdProblem::BadLength(len));
    }
    for (i, ch) in id.chars().enumerate() {
        if alphabet_value(ch).is_none() {
            return Err(TaxIdProblem::BadCharacter {
                ch,
                position: i + 1,
            });
        }
    }
    let (body, last) = id.split_at(USCC_LEN - 1);
    let expected = check_digit(body);
    let found = last.chars().next();
    match (expected, found) {
        (Some(expected), Some(found)) if expected == found => Ok(id),
        (Some(expected), Some(found)) => Err(TaxIdProblem::BadCheckDigit { expected, found }),
        // Unreachable after the checks above; answer without panicking anyway.
        _ => Err(TaxIdProblem::BadLength(len)),
    }
}

/// The GB 32100-2015 check digit for the first 17 characters of a unified social credit
/// code: `alphabet[(31 - sum mod 31) mod 31]` with the standard weights.
///
/// `None` unless `first17` is exactly 17 characters of the alphabet
/// `0123456789ABCDEFGHJKLMNPQRTUWXY` (upper case; no normalisation is applied).
pub fn check_digit(first17: &str) -> Option<char> {
    if first17.chars().count() != WEIGHTS.len() {
        return None;
    }
    let mut sum = 0u32;
    for (ch, weight) in first17.chars().zip(WEIGHTS) {
        sum += alphabet_value(ch)? * weight;
    }
    let index = (31 - sum % 31) % 31;
    ALPHABET.get(index as usize).map(|&b| char::from(b))
}

/// The value of a character in the unified social credit code alphabet.
fn alphabet_value(ch: char) -> Option<u32> {
    if !ch.is_ascii() {
        return None;
    }
    ALPHABET
        .iter()
        .position(|&b| char::from(b) == ch)
        .map(|i| i as u32)
}

/// An ASCII capital letter that is valid in legacy numbers but not in the 18-character code.
fn excluded_from_uscc(ch: char) -> bool {
    matches!(ch, 'I' | 'O' | 'S' | 'V' | 'Z')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_valid_codes() {
        for id in [
            "91350100M000100Y43",
            "91110108551385082Q",
            "91330100716105852F",
            "914403001922038216",
            "91440300708461136T",
            "91110000100010433L",
        ] {
            assert_eq!(check_tax_id(id), Ok(id.to_string()), "{id}");
        }
    }

    #[test]
    fn check_digit_by_hand() {
        // 91350100M000100Y4 (M = 21, Y = 30):
        //   9*1 + 1*3 + 3*9 + 5*27 + 0*19 + 1*26 + 0*16 + 0*17 + 21*20 + 0*29 + 0*25
        //   + 0*13 + 1*8 + 0*24 + 0*10 + 30*30 + 4*28
        //   = 9 + 3 + 27 + 135 + 26 + 420 + 8 + 900 + 112 = 1640;
        // 1640 mod 31 = 28 (31*52 = 1612); (31 - 28) mod 31 = 3 -> '3'.
        assert_eq!(check_digit("91350100M000100Y4"), Some('3'));
        // 91110108722609359:
        //   9 + 3 + 9 + 27 + 0 + 26 + 0 + 136 + 140 + 58 + 50 + 78 + 0 + 216 + 30 + 150
        //   + 252 = 1184; 1184 mod 31 = 6 (31*38 = 1178); 31 - 6 = 25 -> alphabet[25] = 'R'.
        // So 911101087226093591, sometimes quoted as an example, is not a valid code.
        assert_eq!(check_digit("91110108722609359"), Some('R'));
        assert_eq!(
            check_tax_id("911101087226093591"),
            Err(TaxIdProblem::BadCheckDigit {
                expected: 'R',
                found: '1'
            })
        );
        // Sum divisible by 31 -> check digit '0' (the outer `mod 31`).
        assert_eq!(check_digit("00000000000000000"), Some('0'));
        assert_eq!(
            check_tax_id("000000000000000000"),
            Ok("000000000000000000".into())
        );
        // 1 at the first position: sum 1 -> 30 -> 'Y'.
        assert_eq!(check_digit("10000000000000000"), Some('Y'));
    }

    #[test]
    fn check_digit_rejects_bad_input() {
        assert_eq!(check_digit(""), None);
        assert_eq!(check_digit("9135010"), None);
        assert_eq!(check_digit("91350100M000100Y43"), None); // 18 characters
        assert_eq!(check_digit("91350100I000100Y4"), None); // I is not in the alphabet
        assert_eq!(check_digit("91350100m000100Y4"), None); // lower case
        assert_eq!(check_digit("91350100M000100Y４"), None); // full-width digit
    }

    #[test]
    fn wrong_check_digit() {
        assert_eq!(
            check_tax_id("91350100M000100Y4Q"),
            Err(TaxIdProblem::BadCheckDigit {
                expected: '3',
                found: 'Q'
            })
        );
        assert_eq!(
            check_tax_id("91110108551385082R"),
            Err(TaxIdProblem::BadCheckDigit {
                expected: 'Q',
                found: 'R'
            })
        );
    }

    #[test]
    fn normalisation() {
        assert_eq!(
            normalize_tax_id("  9135 0100 m000 100y43\t"),
            "91350100M000100Y43"
        );
        assert_eq!(
            normalize_tax_id("\u{3000}91350100M000100Y43\u{3000}"),
            "91350100M000100Y43"
        );
        assert_eq!(
            check_tax_id(" 91350100m000100y43 "),
            Ok("91350100M000100Y43".to_string())
        );
        assert_eq!(
            check_tax_id("9135 0100 M000 100Y 43"),
            Ok("91350100M000100Y43".to_string())
        );
        assert_eq!(normalize_tax_id(""), "");
    }

    #[test]
    fn empty() {
        assert_eq!(check_tax_id(""), Err(TaxIdProblem::Empty));
        assert_eq!(check_tax_id("   \t\n "), Err(TaxIdProblem::Empty));
    }

    #[test]
    fn legacy_numbers_by_format() {
        // 15, 17 and 20 characters of [0-9A-Z], any letters (also I, O, S, V, Z), no check.
        for id in [
            "110108722609359",
            "11010872260935A",
            "IOSVZIOSVZIOSVZ",
            "110108722609359OS",
            "11010872260935900001",
            "ABCDEFGHIJKLMNOPQRST",
        ] {
            assert_eq!(check_tax_id(id), Ok(id.to_string()), "{id}");
        }
        // Normalised first: 17 characters once spaces are removed and letters upper-cased.
        assert_eq!(
            check_tax_id(" 1101087226 0935 9zz "),
            Ok("110108722609359ZZ".into())
        );
        assert_eq!(
            check_tax_id("11010872260935-"),
            Err(TaxIdProblem::BadCharacter {
                ch: '-',
                position: 15
            })
        );
    }

    #[test]
    fn bad_lengths() {
        for (id, n) in [
            ("1", 1),
            ("12345678901234", 14),
            ("1234567890123456", 16),
            ("9135010 0M000100Y431", 19),
            ("123456789012345678901", 21),
        ] {
            assert_eq!(check_tax_id(id), Err(TaxIdProblem::BadLength(n)), "{id}");
        }
    }

    #[test]
    fn letters_outside_the_uscc_alphabet() {
        // Valid code 91350100M000100Y43 with one character replaced.
        for (bad, position) in [('I', 9), ('O', 1), ('Z', 17), ('S', 5), ('V', 18)] {
            let mut chars: Vec<char> = "91350100M000100Y43".chars().collect();
            chars[position - 1] = bad;
            let id: String = chars.into_iter().collect();
            assert_eq!(
                check_tax_id(&id),
                Err(TaxIdProblem::BadCharacter { ch: bad, position }),
                "{id}"
            );
        }
    }

    #[test]
    fn non_ascii_characters() {
        assert_eq!(
            check_tax_id("91350100M000100Y4３"),
            Err(TaxIdProblem::BadCharacter {
                ch: '３',
                position: 18
            })
        );
        assert_eq!(
            check_tax_id("税91350100M000100Y4"),
            Err(TaxIdProblem::BadCharacter {
                ch: '税',
                position: 1
            })
        );
    }

    #[test]
    fn messages() {
        let p = TaxIdProblem::BadCheckDigit {
            expected: '5',
            found: 'Q',
        };
        assert_eq!(
            p.message(false),
            "check digit is Q, expected 5 (GB 32100-2015)"
        );
        assert_eq!(p.message(true), "校验码为 Q，应为 5（GB 32100-2015）");
        assert_eq!(p.to_string(), p.message(false));
        assert_eq!(
            TaxIdProblem::BadLength(16).message(true),
            "长度为 16，应为 18 位统一社会信用代码或 15、17、20 位纳税人识别号"
        );
        assert!(TaxIdProblem::BadLength(16)
            .message(false)
            .contains("length is 16"));
        let bad_i = TaxIdProblem::BadCharacter {
            ch: 'I',
            position: 9,
        };
        assert!(bad_i.message(false).contains("position 9"));
        assert!(bad_i.message(false).contains("except I, O, S, V, Z"));
        assert!(bad_i.message(true).contains("第 9 位"));
        let dash = TaxIdProblem::BadCharacter {
            ch: '-',
            position: 3,
        };
        assert!(dash
            .message(false)
            .contains("only digits 0-9 and letters A-Z"));
        assert!(TaxIdProblem::Empty.message(false).contains("empty"));
        assert!(TaxIdProblem::Empty.message(true).contains("为空"));
    }

    fn alphabet_string(len: usize) -> impl Strategy<Value = String> {
        proptest::collection::vec(0usize..31, len).prop_map(|ix| {
            ix.into_iter()
                .map(|i| char::from(ALPHABET[i]))
                .collect::<String>()
        })
    }

    proptest! {
        #[test]
        fn computed_check_digit_validates_and_others_do_not(body in alphabet_string(17)) {
            let check = check_digit(&body);
            prop_assert!(check.is_some());
            let check = check.unwrap_or('?');
            let good = format!("{body}{check}");
            prop_assert_eq!(check_tax_id(&good), Ok(good.clone()));
            prop_assert_eq!(check_tax_id(&good.to_ascii_lowercase()), Ok(good.clone()));
            for &b in ALPHABET.iter() {
                let other = char::from(b);
                if other != check {
                    let id = format!("{body}{other}");
                    prop_assert_eq!(
                        check_tax_id(&id),
                        Err(TaxIdProblem::BadCheckDigit { expected: check, found: other })
                    );
                }
            }
        }

        #[test]
        fn single_substitution_is_detected(body in alphabet_string(17), pos in 0usize..17, delta in 1usize..31) {
            // Changing one character of the body changes the check digit (weights are
            // non-zero mod 31, and 31 is prime).
            let check = check_digit(&body);
            let mut ix: Vec<usize> = body
                .bytes()
                .map(|b| ALPHABET.iter().position(|&a| a == b).unwrap_or(0))
                .collect();
            ix[pos] = (ix[pos] + delta) % 31;
            let changed: String = ix.iter().map(|&i| char::from(ALPHABET[i])).collect();
            prop_assert_ne!(check_digit(&changed), check);
        }

        #[test]
        fn never_panics(s in "\\PC{0,30}") {
            match check_tax_id(&s) {
                Ok(id) => {
                    prop_assert_eq!(&id, &normalize_tax_id(&s));
                    prop_assert!([15usize, 17, 18, 20].contains(&id.len()));
                }
                Err(p) => {
                    prop_assert!(!p.message(false).is_empty());
                    prop_assert!(!p.message(true).is_empty());
                }
            }
        }
    }
}
