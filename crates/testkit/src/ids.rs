//! Tax IDs: unified social credit codes with valid check digits, and one without.

/// The seller of every test shop and every typed fixture.
pub const SELLER_TAX_ID: &str = "91350100M000100Y43";
/// The test buyer. Its first nine characters hold a letter, so a test that lower-cases
/// them tests the upper-casing of a typed ID.
pub const BUYER_TAX_ID: &str = "91110108MA01C8QW2Y";
/// A valid code whose first seventeen characters are all digits (core's normalisation
/// tests spell it out spaced and in lower case).
pub const NUMERIC_TAX_ID: &str = "91110108551385082Q";

/// A valid unified social credit code: the 17 given characters plus their check digit.
pub fn uscc(first17: &str) -> String {
    let check = kaipiao_core::taxid::check_digit(first17)
        .unwrap_or_else(|| panic!("{first17:?} is not 17 characters of the USCC alphabet"));
    format!("{first17}{check}")
}

/// [`SELLER_TAX_ID`] as a `String`.
pub fn seller_tax_id() -> String {
    SELLER_TAX_ID.to_string()
}

/// [`BUYER_TAX_ID`] as a `String` (for special invoices).
pub fn buyer_tax_id() -> String {
    BUYER_TAX_ID.to_string()
}

/// The buyer's ID with a wrong check digit.
pub fn invalid_tax_id() -> String {
    let good = buyer_tax_id();
    let last = good.chars().last().expect("non-empty");
    let wrong = if last == '0' { '1' } else { '0' };
    format!("{}{wrong}", &good[..17])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixed_ids_carry_their_check_digits() {
        for id in [SELLER_TAX_ID, BUYER_TAX_ID, NUMERIC_TAX_ID] {
            assert_eq!(uscc(&id[..17]), id);
        }
        assert!(NUMERIC_TAX_ID[..17].bytes().all(|b| b.is_ascii_digit()));
        assert!(BUYER_TAX_ID[..9].bytes().any(|b| b.is_ascii_uppercase()));
        assert_ne!(uscc(&invalid_tax_id()[..17]), invalid_tax_id());
    }
}
