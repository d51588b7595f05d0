"""The patient identity of a CDA R2 document, read from ``recordTarget/patientRole`` (DOMAIN.md §4).

French CI-SIS documents carry the INS as a ``patientRole/id`` whose ``@root`` is an INS OID and
the local IPP as another ``id``; the INS traits are name parts told apart by ``@qualifier``
(``BR`` birth, ``CL`` in use). Values are kept as the document writes them (no case or accent
folding): comparing is :mod:`engine.identity.model`'s job, deciding whether the INS may be
used is :func:`engine.identity.rules.decide_ins`'s. Nothing here logs, and error reasons never
quote the document, because both would put patient data in the logs.
"""

from __future__ import annotations

from lxml import etree  # type: ignore[import-untyped, unused-ignore]

from engine.cda.xpath import CDA_NS, CLINICAL_DOCUMENT, attr, select
from engine.errors import ParseError
from engine.identity.ins import BILLING_OIDS, classify_oid
from engine.identity.model import Identity, Ins, LocalId, Traits


def cda_identity(root: etree._Element) -> Identity:
    """The identity carried by a parsed ``ClinicalDocument``'s single ``recordTarget``.

    Several patient roles are refused rather than one picked: attaching a document to the
    wrong patient is worse than dead-lettering it.
    """
    if root.tag != CLINICAL_DOCUMENT:
        raise ParseError(f"the root element is not a ClinicalDocument in {CDA_NS}")
    roles = select(root, "v:recordTarget/v:patientRole")
    if not roles:
        raise ParseError("the CDA document has no recordTarget/patientRole")
    if len(roles) > 1:
        raise ParseError(f"the CDA document has {len(roles)} recordTarget/patientRole, not one")
    role = roles[0]

    ins: list[Ins] = []
    local_ids: list[LocalId] = []
    ignored = 0
    for id_ in select(role, "v:id[not(@nullFlavor)]"):
        oid = attr(id_, "root")
        value = attr(id_, "extension")
        if not value or not oid:  # no value to match on, or no authority to scope it
            continue
        kind = classify_oid(oid)
        if kind is not None:
            ins.append(Ins(value=value, oid=oid, kind=kind))
        elif oid in BILLING_OIDS:  # a NIR used for billing is not an INS (DOMAIN.md §1)
            ignored += 1
        else:
            local_ids.append(LocalId(value=value, authority="", authority_oid=oid, type_code="PI"))

    return Identity(
        ins=tuple(ins),
        local_ids=tuple(local_ids),
        traits=_traits(role),
        # An INS only travels in a CDA once qualified (CI-SIS), hence VALI.
        reliability=("VALI",) if ins else (),
        birth_date_corrected=False,
        birth_name_typed=any("BR" in q for q, _ in _name_parts(role, "family")),
        ignored_ins=ignored,
    )


def _traits(role: etree._Element) -> Traits:
    """The INS traits and the used name, from ``patientRole/patient``."""
    families = _name_parts(role, "family")
    givens = _name_parts(role, "given")

    birth_name = _first(families, "BR")
    unqualified_families = [text for qualifiers, text in families if not qualifiers]
    if not birth_name and len(unqualified_families) == 1:
        birth_name = unqualified_families[0]  # a lone plain family name is the birth name
    given_names = " ".join(text for qualifiers, text in givens if not qualifiers)
    first_given = _first(givens, "BR") or (given_names.split()[0] if given_names else "")

    sex = _first_attr(role, "v:patient/v:administrativeGenderCode", "code")
    birth_time = _first_attr(role, "v:patient/v:birthTime", "value")
    counties = select(role, "v:patient/v:birthplace/v:place/v:addr/v:county[not(@nullFlavor)]")
    return Traits(
        birth_name=birth_name,
        first_given_name=first_given,
        given_names=given_names,
        birth_date=birth_time[:8],
        sex=sex,
        birth_place=_text(counties[0]) if counties else "",
        used_name=_first(families, "CL"),
    )


def _name_parts(role: etree._Element, part: str) -> list[tuple[frozenset[str], str]]:
    """Every non-empty ``family`` or ``given`` of the patient's names, with its qualifiers.

    ``@qualifier`` is a set in the CDA data types (``"BR SP"`` is legal), hence the split.
    """
    out: list[tuple[frozenset[str], str]] = []
    for element in select(role, f"v:patient/v:name/v:{part}[not(@nullFlavor)]"):
        text = _text(element)
        if text:
            out.append((frozenset(attr(element, "qualifier").split()), text))
    return out


def _first(parts: list[tuple[frozenset[str], str]], qualifier: str) -> str:
    return next((text for qualifiers, text in parts if qualifier in qualifiers), "")


def _first_attr(role: etree._Element, path: str, name: str) -> str:
    found = select(role, f"{path}[not(@nullFlavor)]")
    return attr(found[0], name) if found else ""


def _text(element: etree._Element) -> str:
    """The element's own leading text, stripped.

    Not ``itertext()`` nor XPath ``string()``: those would yield an unexpanded entity
    reference or expand an internal one, which the hardened parser meant to leave out.
    """
    return str(element.text or "").strip()
