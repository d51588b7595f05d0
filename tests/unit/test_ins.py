"""The INS matricule codec (DOMAIN.md §1): key, validation, Corsica, and OID classification."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from engine.errors import InvalidIns
from engine.identity.ins import BILLING_OIDS, InsKind, check_matricule, classify_oid, nir_key

DIGITS = "0123456789"
CORSICA = {"2A": "19", "2B": "18"}


def expected_key(body: str) -> str:
    """The key written from DOMAIN.md §1, independently of ``nir_key``."""
    department = body[5:7].upper()
    numeric = body[:5] + CORSICA.get(department, department) + body[7:]
    return f"{97 - int(numeric) % 97:02d}"


def digits(size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=DIGITS, min_size=size, max_size=size)


SEX = st.sampled_from("12345678")
# Real months, then the fictitious ranges (20-42, 50-99) that the codec must not reject.
MONTH = st.one_of(st.integers(1, 12), st.integers(20, 42), st.integers(50, 99)).map(
    lambda month: f"{month:02d}"
)
DEPARTMENT = st.one_of(digits(2), st.sampled_from(["2A", "2B"]))


def body_with(department: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A 13-character body: sex, year, month, department, commune, order number."""
    return st.builds(
        lambda *parts: "".join(parts), SEX, digits(2), MONTH, department, digits(3), digits(3)
    )


BODY = body_with(DEPARTMENT)
CORSICAN_BODY = body_with(st.sampled_from(["2A", "2B"]))
VALID = BODY.map(lambda body: body + expected_key(body))


def reason_of(value: str) -> str:
    with pytest.raises(InvalidIns) as caught:
        check_matricule(value)
    assert str(caught.value) == caught.value.reason
    return caught.value.reason


# --- the key formula and valid matricules -------------------------------------------------


@given(BODY)
def test_nir_key_is_97_minus_the_body_modulo_97_with_corsica_read_as_19_and_18(body: str) -> None:
    assert f"{nir_key(body):02d}" == expected_key(body)
    assert 1 <= nir_key(body) <= 97


@given(BODY, st.booleans())
def test_every_well_formed_matricule_with_its_key_passes_and_comes_back_upper_cased(
    body: str, lower: bool
) -> None:
    value = body + expected_key(body)
    sent = value.lower() if lower else value
    assert check_matricule(sent) == value.upper()


@pytest.mark.parametrize(
    "value",
    [
        "279035121518989",  # the French test patient
        # python-stdnum stdnum/fr/nir.py doctests
        "295109912611193",
        "253072B07300470",
        "253072A07300443",
    ],
)
def test_known_valid_matricules_pass(value: str) -> None:
    assert check_matricule(value) == value


@pytest.mark.parametrize(
    "value",
    [
        "295109912611199",  # python-stdnum: wrong key
        "253072C07300443",  # python-stdnum: 2C is no department
        "6546546546546703",  # python-stdnum: 16 characters
        "2 95 10 99 126 111 93",  # separators are not cleaned: wrong length
        " 279035121518989",
        "279035121518989\n",
        "279035121518988",
    ],
)
def test_known_invalid_matricules_fail(value: str) -> None:
    reason_of(value)


# --- error detection ----------------------------------------------------------------------


@given(VALID, st.data())
def test_every_single_digit_change_fails(value: str, data: st.DataObject) -> None:
    # A changed body digit shifts the body by d*10^k, never a multiple of the prime 97, so the
    # computed key changes; a changed key digit changes the key. Changing the "2" of 2A/2B
    # breaks the Corsican pattern instead.
    position = data.draw(st.sampled_from([i for i, c in enumerate(value) if c in DIGITS]))
    digit = data.draw(st.sampled_from(DIGITS.replace(value[position], "")))
    changed = value[:position] + digit + value[position + 1 :]
    reason_of(changed)


@given(VALID, st.data())
def test_every_transposition_of_two_adjacent_different_characters_fails(
    value: str, data: st.DataObject
) -> None:
    # No restriction is needed (see the exhaustive test below): a swap inside the body shifts it
    # by 9*(a-b)*10^k, a swap inside the key changes the key, a swap across the body/key
    # boundary is caught too, and a swap that moves a Corsican letter breaks the pattern.
    positions = [i for i in range(len(value) - 1) if value[i] != value[i + 1]]
    assume(positions)
    i = data.draw(st.sampled_from(positions))
    swapped = value[:i] + value[i + 1] + value[i] + value[i + 2 :]
    reason_of(swapped)


# --- Corsica ------------------------------------------------------------------------------


@given(CORSICAN_BODY)
def test_a_corsican_matricule_passes_with_19_or_18_and_fails_with_a_key_computed_from_20(
    body: str,
) -> None:
    assert check_matricule(body + expected_key(body)) == body + expected_key(body)
    literal_key = f"{97 - int(body[:5] + '20' + body[7:]) % 97:02d}"
    reason_of(body + literal_key)


@given(CORSICAN_BODY)
def test_a_lower_case_corsican_department_is_accepted_and_upper_cased(body: str) -> None:
    value = body + expected_key(body)
    lowered = value[:6] + value[6].lower() + value[7:]
    assert check_matricule(lowered) == value


@given(CORSICAN_BODY)
def test_a_corsican_matricule_and_its_19_or_18_twin_have_the_same_key(body: str) -> None:
    twin = body[:5] + CORSICA[body[5:7]] + body[7:]
    assert nir_key(body) == nir_key(twin)
    assert check_matricule(twin + expected_key(body)) == twin + expected_key(body)


# --- malformed values ---------------------------------------------------------------------


def test_the_empty_string_fails() -> None:
    reason_of("")


@given(st.text(st.characters(exclude_categories=["Cs"])).filter(lambda text: len(text) != 15))
def test_any_text_of_a_length_other_than_15_fails(text: str) -> None:
    reason_of(text)


@given(VALID, st.data())
def test_a_truncated_or_extended_matricule_fails(value: str, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, 14))
    extra = data.draw(digits(1) | digits(2))
    reason_of(data.draw(st.sampled_from([value[:cut], value + extra, extra + value])))


@given(VALID, st.integers(0, 14), st.characters(exclude_categories=["Cs"]))
def test_a_non_digit_outside_2a_2b_fails(value: str, position: int, char: str) -> None:
    assume(char not in DIGITS)
    # "A" or "B" after a "2" in the department would make a Corsican department, not an error.
    assume(not (position == 6 and value[5] == "2" and char.upper() in ("A", "B")))
    reason_of(value[:position] + char + value[position + 1 :])


def test_non_ascii_digits_fail_though_int_would_read_them() -> None:
    arabic_indic = "279035121518989".translate(str.maketrans(DIGITS, "٠١٢٣٤٥٦٧٨٩"))
    fullwidth = "279035121518989".translate(str.maketrans(DIGITS, "０１２３４５６７８９"))
    reason_of(arabic_indic)
    reason_of(fullwidth)


NEAR_MISSES = st.one_of(
    digits(15),
    st.text(alphabet=DIGITS + "ABab", min_size=3, max_size=30),
    VALID.map(lambda value: value[:-1] + str((int(value[-1]) + 1) % 10)),
    VALID.map(lambda value: value[1:]),
    VALID.map(lambda value: value + "0"),
)


@given(NEAR_MISSES)
def test_the_reason_never_contains_the_matricule(value: str) -> None:
    # Values of three characters or more: "15" or "2" alone can appear in any sentence that
    # states a length, and the empty string is in every string.
    try:
        check_matricule(value)
    except InvalidIns as error:
        assert value not in error.reason
        assert value.upper() not in error.reason
        assert value not in str(error)


# --- OIDs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("oid", "kind"),
    [
        ("1.2.250.1.213.1.4.8", InsKind.NIR),
        ("1.2.250.1.213.1.4.9", InsKind.NIA),
        ("1.2.250.1.213.1.4.10", InsKind.NIR_TEST),
        ("1.2.250.1.213.1.4.11", InsKind.NIR_DEMO),
        ("1.2.250.1.213.1.4.13", None),
        ("1.2.250.1.213.1.4.14", None),
        ("1.2.250.1.213.1.4.1", None),
        ("1.2.250.1.213.1.4.80", None),
        ("1.2.250.1.213.1.4", None),
        ("2.16.840.1.113883.2.8.2.1", None),
        ("", None),
    ],
)
def test_classify_oid_names_the_ins_kind_or_none(oid: str, kind: InsKind | None) -> None:
    assert classify_oid(oid) is kind


def test_billing_oids_are_the_13_and_14_arcs_and_are_not_an_ins() -> None:
    assert {"1.2.250.1.213.1.4.13", "1.2.250.1.213.1.4.14"} == BILLING_OIDS
    assert all(classify_oid(oid) is None for oid in BILLING_OIDS)


WHITESPACE = st.text(alphabet=" \t\r\n", max_size=4)


@given(
    st.sampled_from(
        [
            ("1.2.250.1.213.1.4.8", InsKind.NIR),
            ("1.2.250.1.213.1.4.9", InsKind.NIA),
            ("1.2.250.1.213.1.4.10", InsKind.NIR_TEST),
            ("1.2.250.1.213.1.4.11", InsKind.NIR_DEMO),
            ("1.2.250.1.213.1.4.13", None),
        ]
    ),
    WHITESPACE,
    WHITESPACE,
)
def test_classify_oid_tolerates_surrounding_whitespace(
    case: tuple[str, InsKind | None], before: str, after: str
) -> None:
    oid, kind = case
    assert classify_oid(before + oid + after) is kind
