"""What the record pages render on the server: the SVG trend chart and the CDA narrative as
safe HTML; the sections' categories from the type codes."""

from __future__ import annotations

from engine.record.sections import category
from engine.record_api.charts import reference_range, trend_svg
from engine.record_api.narrative import narrative_html
from tests.sample_files import CDA_SAMPLES


def series(*values: str, reference: str = "3.5-5.0") -> dict[str, object]:
    points = [{"value": v, "flag": ""} for v in values]
    return {"code": "2823-3", "label": "K <b>", "reference_range": reference, "points": points}


def test_the_trend_chart_shades_the_reference_range_and_marks_values_outside_it() -> None:
    svg = str(trend_svg(series("3.9", "5.6", "4.2")))
    assert svg.startswith("<svg") and '<rect class="range"' in svg
    assert svg.count("<circle") == 3 and svg.count('fill="#b3261e"') == 1  # 5.6 > 5.0
    assert "K &lt;b&gt;" in svg and "<b>" not in svg
    assert '<rect class="range"' not in str(trend_svg(series("1", reference="négatif")))
    assert str(trend_svg(series("positif"))) == ""
    assert reference_range("9.30-17.00 pg/mL") == (9.3, 17.0)


def test_the_narrative_keeps_text_and_tables_and_drops_scripts_links_and_attributes() -> None:
    cda = b"""<ClinicalDocument xmlns="urn:hl7-org:v3"><component><structuredBody><component>
      <section><title>R\xc3\xa9sultats</title><text><paragraph styleCode="x">TSH &lt;script&gt;
      <linkHtml href="javascript:alert(1)">lien</linkHtml></paragraph>
      <table border="1"><tbody><tr><td onclick="x()">1.9</td></tr></tbody></table>
      <renderMultiMedia referencedObject="img1"/></text></section>
    </component></structuredBody></component></ClinicalDocument>"""
    html = str(narrative_html(cda))
    assert "<h3>Résultats</h3>" in html and "<td>1.9</td>" in html
    assert "&lt;script&gt;" in html and "<script" not in html
    assert "href" not in html and "onclick" not in html and "styleCode" not in html
    assert "lien" in html
    real = str(narrative_html((CDA_SAMPLES / "BIO-CR-BIO_2024.01_TSH_1.xml").read_bytes()))
    assert "<h3>" in real and "<table>" in real


def test_categories_come_from_the_type_codes() -> None:
    """DOMAIN.md line 82-88 (type codes) and 125-127 (rubriques)."""
    assert [category(c) for c in ("SYNTH", "11502-2", "18748-4", "REMB", "11369-6", "x")] == [
        "summary",
        "biology",
        "imaging",
        "reimbursements",
        "prevention",
        "reports",
    ]
