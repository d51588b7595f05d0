"""Deterministic generator of realistic ORU^R01 v2.5 lab results (about 1.6 KB, 10 OBX).

Each message has a unique MSH-10, CR segment separators, MSH-18 ``UNICODE UTF-8``, a PID drawn
from a seeded pool of patients (varied ids, names with accents, birth dates, sexes, addresses),
a PV1, an ORC/OBR for the panel and ten OBX with LOINC codes, UCUM units, reference ranges and
abnormal flags computed from the value. The same ``seed`` always yields the same bytes.

The PID is a qualified French identity (PAM-FR): PID-3 holds the hospital's IPP (CX-5 ``PI``,
authority ``CHU-X``) and the INS (a valid NIR built from sex, birth date and birth place, with
the *test* INS OID, accepted when ``engine.identity.accept_test_ins`` is true), PID-5 is typed
``L`` (birth name, first given name, all given names) and PID-32 says ``VALI``. The engine holds
results for a patient it does not know (902): :func:`registrations` gives one ADT^A28 per pool
patient, with the same PID, to send first.

Run ``python bench/generate.py [N]`` to print size statistics and one sample message.
"""

from __future__ import annotations

import random
import statistics
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

CR = "\r"


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


FAMILY_NAMES = _words(
    "MARTIN BERNARD THOMAS PETIT ROBERT RICHARD DURAND DUBOIS MOREAU LAURENT SIMON MICHEL "
    "LEFÈVRE LEROY ROUX DAVID BERTRAND MOREL FOURNIER GIRARD BONNET DUPONT LAMBERT FONTAINE "
    "ROUSSEAU VINCENT MULLER LEFEBVRE FAURE ANDRÉ MERCIER BLANC GUÉRIN BOYER GARNIER CHEVALIER "
    "FRANÇOIS LEGRAND GAUTHIER GARCIA PERRIN ROBIN CLÉMENT MORIN NICOLAS HENRY ROUSSEL MATHIEU "
    "GAUTIER MASSON MARCHAND DUVAL DENIS DUMONT MARIE LEMAIRE NOËL MEYER DUFOUR MEUNIER BRUN "
    "BLANCHARD GIRAUD JOLY RIVIÈRE LUCAS BRUNET GAILLARD BARBIER ARNAUD MARTINEZ GÉRARD ROCHE "
    "RENARD SCHMITT ROY LEROUX COLIN VIDAL CARON PICARD ROGER FABRE AUBERT LEMOINE RENAUD "
    "DUMAS LACROIX OLIVIER PHILIPPE BOURGEOIS PIERRE BENOÎT REY LECLERC PAYET ROLLAND LECLERCQ "
    "GUILLAUME LECOMTE LÓPEZ JEAN DUPUY GUILLOT HUBERT BERGER CARPENTIER SANCHEZ DUPUIS MOULIN "
    "D'ALMEIDA LE-GALL N'DIAYE SAINT-JUST"
)

GIVEN_F = _words(
    "MARIE JEANNE FRANÇOISE MONIQUE CATHERINE NATHALIE ISABELLE SYLVIE ANNE CHRISTINE "
    "MARTINE CÉLINE CHLOÉ ÉLODIE LÉA MANON CAMILLE INÈS ZOÉ AGNÈS HÉLÈNE MAËLLE NOÉMIE LOUISE"
)
GIVEN_M = _words(
    "JEAN PIERRE MICHEL ANDRÉ PHILIPPE RENÉ LOUIS ALAIN JACQUES BERNARD MARCEL DANIEL "
    "FRANÇOIS ÉRIC STÉPHANE JÉRÔME THÉO LUCAS HUGO NOÉ RAPHAËL GAËTAN JOËL CLÉMENT"
)

CITIES = (
    ("PARIS", "75013", "75113"),
    ("LYON", "69003", "69383"),
    ("MARSEILLE", "13005", "13205"),
    ("TOULOUSE", "31000", "31555"),
    ("NANTES", "44000", "44109"),
    ("STRASBOURG", "67000", "67482"),
    ("LILLE", "59000", "59350"),
    ("RENNES", "35000", "35238"),
    ("SAINT-ÉTIENNE", "42000", "42218"),
    ("AJACCIO", "20000", "2A004"),
    ("COSNE-COURS-SUR-LOIRE", "58200", "58086"),
    ("BÉZIERS", "34500", "34032"),
)
STREETS = (
    "RUE DE LA RÉSISTANCE",
    "AVENUE JEAN JAURÈS",
    "BOULEVARD VOLTAIRE",
    "RUE DES ÉCOLES",
    "CHEMIN DU MOULIN",
    "PLACE DE L'ÉGLISE",
    "ALLÉE DES TILLEULS",
    "RUE VICTOR HUGO",
)
#: The hospital that assigns the IPP (PID-3 CX-4), whatever laboratory sends the result.
IPP_AUTHORITY = "CHU-X"
IPP_AUTHORITY_OID = "1.2.250.1.71.4.2.2"
#: The INS-NIR OID of the test environment (production: 1.2.250.1.213.1.4.8).
INS_OID = "1.2.250.1.213.1.4.10"
INS_AUTHORITY = "ASIP-SANTE-INS-NIR"
#: PID-32, the identity reliability code: the INS was checked against the national service.
QUALIFIED = "VALI"

#: Distinct patients the generated results are about (the default pool).
POOL_SIZE = 2000

SENDERS = (
    ("LABOSIL", "LABO-CENTRAL"),
    ("BIOLOGIX", "CHU-NORD"),
    ("SGL-LAB", "CLINIQUE-EST"),
)


@dataclass(frozen=True, slots=True)
class Analyte:
    loinc: str
    text: str
    unit: str
    low: float
    high: float
    decimals: int
    value_type: str = "NM"


#: A complete blood count and a basic metabolic panel (LOINC codes and short names, UCUM units,
#: adult reference ranges).
CBC = (
    Analyte("6690-2", "WBC # Bld Auto", "10*9/L", 4.0, 10.0, 1),
    Analyte("789-8", "RBC # Bld Auto", "10*12/L", 4.2, 5.7, 2),
    Analyte("718-7", "Hgb Bld-mCnc", "g/dL", 12.0, 17.0, 1),
    Analyte("4544-3", "Hct VFr Bld Auto", "%", 37.0, 50.0, 1),
    Analyte("787-2", "MCV RBC Auto", "fL", 80.0, 100.0, 1),
    Analyte("785-6", "MCH RBC Qn Auto", "pg", 27.0, 33.0, 1),
    Analyte("786-4", "MCHC RBC Auto-mCnc", "g/dL", 32.0, 36.0, 1),
    Analyte("777-3", "Platelet # Bld Auto", "10*9/L", 150.0, 400.0, 0),
    Analyte("770-8", "Neutrophils NFr Bld Auto", "%", 40.0, 75.0, 1),
    Analyte("736-9", "Lymphocytes NFr Bld Auto", "%", 20.0, 45.0, 1),
)
BMP = (
    Analyte("2951-2", "Sodium SerPl-sCnc", "mmol/L", 136.0, 145.0, 0),
    Analyte("2823-3", "Potassium SerPl-sCnc", "mmol/L", 3.5, 5.1, 1),
    Analyte("2075-0", "Chloride SerPl-sCnc", "mmol/L", 98.0, 107.0, 0),
    Analyte("1963-8", "HCO3 SerPl-sCnc", "mmol/L", 22.0, 29.0, 0),
    Analyte("3094-0", "BUN SerPl-mCnc", "mg/dL", 7.0, 20.0, 0),
    Analyte("2160-0", "Creat SerPl-mCnc", "mg/dL", 0.6, 1.2, 2),
    Analyte("2345-7", "Glucose SerPl-mCnc", "mg/dL", 70.0, 99.0, 0),
    Analyte("17861-6", "Calcium SerPl-mCnc", "mg/dL", 8.6, 10.3, 1),
    Analyte("2885-2", "Prot SerPl-mCnc", "g/dL", 6.4, 8.3, 1),
    Analyte("1751-7", "Albumin SerPl-mCnc", "g/dL", 3.5, 5.2, 1),
)
PANELS = (
    ("58410-2", "CBC panel Bld Auto", CBC),
    ("51990-0", "BMP Bld", BMP),
)


@dataclass(frozen=True, slots=True)
class Patient:
    ipp: str
    ins: str  # NIR matricule: 13 characters and the 2-digit key
    family: str
    given: str
    second: str
    birth_date: str
    sex: str
    street: str
    city: str
    zip_code: str
    insee: str
    phone: str


def nir_key(body: str) -> int:
    """The key of a 13-character NIR body (as engine.identity.ins.nir_key; 2A/2B read as 19/18)."""
    digits = body[:5] + {"2A": "19", "2B": "18"}.get(body[5:7], body[5:7]) + body[7:]
    return 97 - int(digits) % 97


class NirNumbering:
    """Unique NIR: sex, year and month of birth, INSEE birth place, then a birth order number
    counted per (sex, month, place) so that no two patients of a pool share one."""

    def __init__(self) -> None:
        self.orders: dict[str, int] = {}

    def next(self, sex: str, birth: datetime, insee: str) -> str:
        prefix = f"{1 if sex == 'M' else 2}{birth:%y%m}{insee}"
        order = self.orders.get(prefix, 0) + 1
        if order > 999:
            raise ValueError(f"more than 999 births for NIR prefix {prefix}")
        self.orders[prefix] = order
        body = f"{prefix}{order:03d}"
        return f"{body}{nir_key(body):02d}"


def make_patients(count: int, seed: int) -> list[Patient]:
    """``count`` patients; the first ``n`` are the same whatever ``count`` (same ``seed``)."""
    return list(iter_patients(count, seed))


def iter_patients(count: int, seed: int) -> Iterator[Patient]:
    """The patients of :func:`make_patients`, one at a time (for pools of millions)."""
    rng = random.Random(seed * 7919 + 1)
    numbering = NirNumbering()
    for i in range(count):
        sex = rng.choice("MF")
        names = GIVEN_M if sex == "M" else GIVEN_F
        given, second = rng.sample(names, 2)
        birth = datetime(1930, 1, 1) + timedelta(days=rng.randrange(0, 365 * 93))
        city, zip_code, insee = rng.choice(CITIES)
        yield Patient(
            ipp=f"{rng.randrange(10**7, 10**8)}{i:05d}",
            ins=numbering.next(sex, birth, insee),
            family=rng.choice(FAMILY_NAMES),
            given=given,
            second=second,
            birth_date=birth.strftime("%Y%m%d"),
            sex=sex,
            street=f"{rng.randrange(1, 200)} {rng.choice(STREETS)}",
            city=city,
            zip_code=zip_code,
            insee=insee,
            phone=f"0{rng.randrange(1, 8)}{rng.randrange(10**7, 10**8)}",
        )


def _value(a: Analyte, rng: random.Random) -> tuple[str, str]:
    span = a.high - a.low
    roll = rng.random()
    if roll < 0.08:
        v = a.low - span * rng.uniform(0.05, 0.6)
    elif roll < 0.16:
        v = a.high + span * rng.uniform(0.05, 0.8)
    else:
        v = rng.uniform(a.low, a.high)
    v = max(v, 0.0)
    text = f"{v:.{a.decimals}f}"
    shown = float(text)
    if shown < a.low:
        flag = "LL" if shown < a.low - span / 2 else "L"
    elif shown > a.high:
        flag = "HH" if shown > a.high + span / 2 else "H"
    else:
        flag = "N"
    return text, flag


def _ts(dt: datetime) -> str:
    return dt.strftime("%Y%m%d%H%M%S") + "+0100"


def pid_segment(patient: Patient, qualified: bool = True) -> str:
    """PID of a qualified identity: IPP and INS in PID-3, birth name typed L, PID-32 VALI.

    ``qualified=False``: the IPP alone (no INS, PID-32 empty), as a feed without the INS.
    """
    p = patient
    ins = f"~{p.ins}^^^{INS_AUTHORITY}&{INS_OID}&ISO^INS" if qualified else ""
    return (
        f"PID|1||{p.ipp}^^^{IPP_AUTHORITY}&{IPP_AUTHORITY_OID}&ISO^PI{ins}||"
        f"{p.family}^{p.given}^{p.given} {p.second}^^^^L||{p.birth_date}|{p.sex}|||"
        f"{p.street}^^{p.city}^^{p.zip_code}^FRA^H~^^^^^^BDL^^{p.insee}||{p.phone}^PRN^PH"
        + (f"{'|' * 19}{QUALIFIED}" if qualified else "")
    )


def adt_a28(index: int, patient: Patient, base: datetime) -> str:
    """ADT^A28 (add person information) from the hospital's patient administration: creates
    ``patient`` in the record store. MSH-10 is ``R`` + ``index`` on nine digits."""
    now = base + timedelta(seconds=index)
    return CR.join(
        [
            f"MSH|^~\\&|GAM|{IPP_AUTHORITY}|AIGUILLAGE|GHT-EXEMPLE|{_ts(now)}||ADT^A28^ADT_A05|"
            f"R{index:09d}|P|2.5|||||FRA|UNICODE UTF-8|||",
            f"EVN||{_ts(now)}",
            pid_segment(patient),
            "PV1|1|N",
        ]
    )


def oru_r01(
    index: int,
    patient: Patient,
    rng: random.Random,
    base: datetime,
    control: int | None = None,
    qualified: bool = True,
) -> str:
    """One ORU^R01 v2.5 with 10 OBX (text with CR separators, no trailing CR).

    MSH-10 is ``B`` + ``control`` (default ``index``) on nine digits or more; ``qualified``:
    see :func:`pid_segment`.
    """
    app, facility = SENDERS[index % len(SENDERS)]
    now = base + timedelta(seconds=index * 3 + rng.randrange(3))
    collected = now - timedelta(minutes=rng.randrange(30, 600))
    panel_code, panel_text, analytes = PANELS[rng.randrange(len(PANELS))]
    order = f"{rng.randrange(10**6, 10**7)}"
    control_id = f"B{index if control is None else control:09d}"
    prescriber = f"{rng.randrange(10**10, 10**11)}^{rng.choice(FAMILY_NAMES)}^{rng.choice(GIVEN_M)}"
    segments = [
        f"MSH|^~\\&|{app}|{facility}|AIGUILLAGE|GHT-EXEMPLE|{_ts(now)}||ORU^R01^ORU_R01|"
        f"{control_id}|P|2.5|||||FRA|UNICODE UTF-8|||",
        pid_segment(patient, qualified),
        f"PV1|1|O|LABO^^^{facility}||||{prescriber}|||||||||||"
        f"V{rng.randrange(10**8, 10**9)}^^^{facility}^VN",
        f"ORC|RE|{order}^{app}|{order}^{facility}||CM||||{_ts(collected)}|||{prescriber}",
        f"OBR|1|{order}^{app}|{order}^{facility}|{panel_code}^{panel_text}^LN|||"
        f"{_ts(collected)}|||||||||{prescriber}||||||{_ts(now)}||LAB|F",
    ]
    for n, a in enumerate(analytes, start=1):
        value, flag = _value(a, rng)
        rng_text = f"{a.low:.{a.decimals}f}-{a.high:.{a.decimals}f}"
        segments.append(
            f"OBX|{n}|{a.value_type}|{a.loinc}^{a.text}^LN||{value}|{a.unit}^^UCUM|{rng_text}|"
            f"{flag}|||F|||{_ts(collected)}"
        )
    return CR.join(segments)


def generate(
    count: int, seed: int = 2575, patients: int = POOL_SIZE, start: int = 0
) -> list[bytes]:
    """``count`` UTF-8 encoded messages with MSH-10 ``B<start + i>``.

    The patient pool depends only on ``patients`` (the same people across calls, as in real
    traffic); ``seed`` drives which patient each message is about and the results.
    """
    rng = random.Random(seed)
    pool = make_patients(patients, 2575)
    base = datetime(2025, 3, 1, 7, 0, 0)
    return [
        oru_r01(i, pool[rng.randrange(len(pool))], rng, base, start + i).encode("utf-8")
        for i in range(count)
    ]


def registrations(patients: int = POOL_SIZE) -> list[bytes]:
    """One ADT^A28 per patient of the pool :func:`generate` draws from (same ``patients``), in
    pool order: sent and delivered first, they make every generated ORU's patient known."""
    base = datetime(2025, 2, 1, 7, 0, 0)
    pool = make_patients(patients, 2575)
    return [adt_a28(i, p, base).encode("utf-8") for i, p in enumerate(pool)]


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    msgs = generate(count)
    sizes = [len(m) for m in msgs]
    print(
        f"{count} messages: mean {statistics.fmean(sizes):.0f} B, "
        f"min {min(sizes)} B, max {max(sizes)} B"
    )
    print(msgs[0].decode("utf-8").replace(CR, "\n"))


if __name__ == "__main__":
    main()
