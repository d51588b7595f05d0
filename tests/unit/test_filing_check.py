"""``unfilable_result_channels``: channels whose results could never be filed."""

from __future__ import annotations

from pathlib import Path

from engine.channels.filing_check import unfilable_result_channels
from engine.channels.loader import load_channels, parse_channels

REPO = Path(__file__).resolve().parents[2]

LAB = """
  - name: lab
    source: {type: mllp, port: 2575}
    accept: [ORU^R01]
    destinations: {store: {type: record_store}}
"""
DOCUMENTS = """
  - name: documents
    source: {type: mllp, port: 2577}
    accept: ["MDM^*"]
    destinations: {store: {type: record_store}}
"""


def warnings(*channels: str) -> list[str]:
    return unfilable_result_channels(parse_channels("channels:" + "".join(channels)))


def adt(
    accept: str = '["ADT^*"]', extra: str = "", to: str = "{store: {type: record_store}}"
) -> str:
    return f"""
  - name: adt
    source: {{type: mllp, port: 2576}}
    accept: {accept}
    destinations: {to}
{extra}"""


def test_results_routed_to_the_store_without_any_adt_channel_are_warned_about() -> None:
    found = warnings(LAB, DOCUMENTS)
    assert len(found) == 2
    assert "'lab'" in found[0] and "'documents'" in found[1]
    assert "held forever" in found[0]


def test_a_channel_routing_adt_to_the_store_silences_the_warning() -> None:
    assert warnings(LAB, adt()) == []
    assert warnings(LAB, adt('["ADT^A28"]')) == []
    assert warnings(adt('["*"]').replace("adt", "everything", 1)) == []


def test_an_adt_channel_that_is_disabled_or_routes_adt_elsewhere_does_not_count() -> None:
    disabled = adt().replace("    source:", "    enabled: false\n    source:", 1)
    assert len(warnings(LAB, disabled)) == 1
    elsewhere = adt(to="{out: {type: file, directory: /tmp/x}}")
    assert len(warnings(LAB, elsewhere)) == 1
    routed_away = adt(
        to="{store: {type: record_store}, out: {type: file, directory: /tmp/x}}",
        extra='    routes: [{when: {message_types: ["ADT^*"]}, to: [out]}, {to: [store]}]',
    )
    assert warnings(LAB, routed_away) == []  # the second route takes ADT to the store
    only_away = adt(
        to="{store: {type: record_store}, out: {type: file, directory: /tmp/x}}",
        extra='    routes: [{when: {message_types: ["ADT^*"]}, to: [out]}, '
        '{when: {message_types: ["ORU^R01"]}, to: [store]}]',
    )
    assert len(warnings(LAB, only_away)) == 1


def test_a_standalone_document_channel_counts_as_routing_results() -> None:
    cda = """
  - name: cda
    source: {type: directory, path: /tmp/in, payload: cda}
    accept: ["CDA^11502-2"]
    destinations: {store: {type: record_store}}
"""
    assert len(warnings(cda)) == 1


def test_the_repository_channels_file_files_its_results() -> None:
    assert unfilable_result_channels(load_channels(REPO / "channels.yaml")) == []
