"""The HTML page read as markup (tests/report/test_html_browser.py renders it in Chromium): it is one
self-contained file, every section is there, the layer tree keeps the raw values it sorts on,
user text stays text, and the command line writes it (a table result, a profile)."""

import dataclasses
import re
from html.parser import HTMLParser

import pytest

from torchprof_lab.cli import main
from torchprof_lab.report.render import FORMATS, render
from torchprof_lab.report.units import binary, si

VOID = {"meta", "link", "br", "img", "input", "hr", "source", "col", "base", "wbr"}


class Node:
    def __init__(self, tag, attrs, parent=None):
        self.tag, self.attrs, self.parent, self.items = tag, dict(attrs), parent, []  # text and Nodes, in order

    @property
    def children(self):
        return [item for item in self.items if isinstance(item, Node)]

    @property
    def text(self) -> str:
        return "".join(item if isinstance(item, str) else item.text for item in self.items)

    def all(self, tag=None, cls=None):
        for child in self.children:
            if (tag is None or child.tag == tag) and (cls is None or cls in child.attrs.get("class", "").split()):
                yield child
            yield from child.all(tag, cls)

    def by_id(self, key):
        return next(n for n in self.all() if n.attrs.get("id") == key)


class Tree(HTMLParser):
    """The page as nested Nodes (stdlib only)."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.root = self.node = Node("#root", {})
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        node = Node(tag, attrs, self.node)
        self.node.items.append(node)
        if tag not in VOID:
            self.node = node

    def handle_startendtag(self, tag, attrs):
        self.node.items.append(Node(tag, attrs, self.node))

    def handle_endtag(self, tag):
        node = self.node
        while node.tag != tag and node.parent is not None:
            node = node.parent
        assert node.tag == tag, f"</{tag}> closes nothing"
        self.node = node.parent

    def handle_data(self, data):
        self.node.items.append(data)


@pytest.fixture(scope="module")
def page(html_profile):
    text = html_profile.to_html()
    return text, Tree(text).root


def test_html_is_a_format_of_render():
    assert "html" in FORMATS
    with pytest.raises(TypeError, match="no rendering for object"):
        render(object(), "html")


def test_the_page_fetches_nothing(page):
    text, root = page
    assert text.startswith("<!DOCTYPE html>")
    for node in root.all():
        for name in ("src", "href", "xlink:href", "action", "srcset", "poster", "data"):
            value = node.attrs.get(name) or ""
            assert "http://" not in value and "https://" not in value and not value.startswith("//"), (node.tag, value)
        assert node.tag not in ("link", "iframe", "img", "object", "embed"), node.tag
    scripts = list(root.all("script"))
    assert len(scripts) == 1 and "src" not in scripts[0].attrs and "fetch(" not in scripts[0].text
    styles = list(root.all("style"))
    assert len(styles) == 1 and "@import" not in styles[0].text and "url(" not in styles[0].text
    policy = next(n for n in root.all("meta") if n.attrs.get("http-equiv") == "Content-Security-Policy")
    assert policy.attrs["content"].startswith("default-src 'none';")
    assert [a.attrs["href"] for a in root.all("a")] == ["#totals", "#layers", "#timing", "#roofline", "#memory",
                                                       "#hardware"]


def test_every_section_and_chart_is_there(page, html_profile):
    _, root = page
    sections = [s.attrs["id"] for s in root.all("section")]
    assert sections == ["totals", "layers", "timing", "roofline", "memory", "hardware"]
    charts = {svg.attrs["id"] for svg in root.all("svg", "chart")}
    assert charts == {"chart-throughput", "chart-latency", "chart-roofline", "chart-memory"}
    header = next(root.all("header"))
    facts = {li.items[0].text: li.items[1] for li in header.all("li")}  # <li><b>name</b>value</li>
    assert facts["batch"] == "1" and facts["device"] == "cpu" and facts["precision"] == "fp32"
    assert facts["input"] == html_profile.inputs and facts["intra op threads"] == str(
        html_profile.timing.environment["intra_op_threads"])
    totals = root.by_id("totals").text
    assert f"{html_profile.params:,}" in totals and si(html_profile.flops) in totals and "1 MAC = 2 FLOPs" in totals
    hardware = root.by_id("hardware").text
    ceiling = html_profile.timing.ceiling  # the ISA peak is unknown on some CPUs
    assert f"Theoretical peak{si(ceiling.peak_flops, 'FLOP/s') if ceiling.peak_flops else 'unknown'}" in hardware
    assert f"Ridge point{ceiling.ridge_point:.1f} FLOP/B" in hardware


def test_layer_rows_keep_the_raw_values_they_sort_on(page, html_profile):
    _, root = page
    table = root.by_id("layer-table")
    heads = [th.text for th in next(table.all("thead")).all("th")]
    assert heads == ["Layer", "Type", "Output", "Params", "MACs", "FLOPs", "Bytes", "FLOP/B", "Bound", "Roofline ms",
                     "Latency ms", "x roofline", "Peak in fwd"]  # inference: no saved-for-backward column
    rows = list(next(table.all("tbody")).all("tr"))
    assert [r.attrs["data-name"] for r in rows] == [layer.name for layer in html_profile.layers]
    memory = {m.name: m for m in html_profile.memory.layers}
    for row, layer in zip(rows, html_profile.layers):
        cells = dict(zip(heads, row.all("td")))
        assert next(cells["Layer"].all("span", "lname")).text == layer.name
        assert cells["FLOPs"].attrs["data-v"] == str(layer.flops) and cells["FLOPs"].text == si(layer.flops)
        assert cells["Bytes"].text == si(layer.bytes, "B") and cells["Params"].attrs["data-v"] == str(layer.params)
        assert float(cells["Latency ms"].attrs["data-v"]) == layer.latency
        assert cells["Latency ms"].text == f"{layer.latency * 1e3:.3f}"
        assert cells["Peak in fwd"].attrs["data-v"] == str(memory[layer.name].forward_peak)
        assert cells["Peak in fwd"].text == binary(memory[layer.name].forward_peak)
    by_name = {r.attrs["data-name"]: r for r in rows}
    assert by_name["3.0"].attrs["data-parent"] == by_name["3"].attrs["data-id"]
    assert by_name["3"].attrs["data-parent"] == ""
    assert [r.attrs["data-name"] for r in rows if next(r.all("button", "toggle"), None)] == ["3"]
    assert next(by_name["5"].all("td")).attrs["data-v"] == "5"
    total = list(next(table.all("tfoot")).all("td"))
    assert total[0].text == "Total" and total[heads.index("MACs")].attrs["data-v"] == str(html_profile.macs)


def test_user_text_stays_text(page, html_profile):
    text, root = page
    name = html_profile.layers[-1].name
    assert name == "<script>alert(1)</script>"  # the fixture's last layer
    assert name not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert len(list(root.all("script"))) == 1
    assert [s.text for s in root.all("span", "lname")].count(name) == 1
    assert [c.attrs["data-name"] for c in root.by_id("chart-roofline").all("circle", "layer")].count(name) == 0


def test_oom_rows_are_marked_in_the_charts(page, html_profile):
    _, root = page
    for key in ("chart-throughput", "chart-latency"):
        marks = list(root.by_id(key).all("line", "oom"))
        assert [m.attrs["data-batch"] for m in marks] == ["64"] and "OOM at batch 64" in marks[0].text
    timing_rows = [[td.text for td in tr.all("td")] for tr in next(root.by_id("timing").all("tbody")).all("tr")]
    assert [r[:2] for r in timing_rows] == [["1", "ok"], ["4", "ok"], ["64", "OOM"]]
    clean = Tree(render(dataclasses.replace(html_profile.timing, rows=html_profile.timing.rows[:2]), "html")).root
    assert not list(clean.all("line", "oom")) and clean.by_id("chart-throughput")


def test_depth_is_the_depth_shown_at_first(html_profile):
    root = Tree(html_profile.to_html(depth=1)).root
    selected = [o.attrs["value"] for o in root.by_id("depth").all("option") if "selected" in o.attrs]
    assert selected == ["1"]
    assert len(list(next(root.by_id("layer-table").all("tbody")).all("tr"))) == len(html_profile.layers)


@pytest.mark.parametrize("depth", [0, -1, "2", 1.5, True])
def test_a_bad_depth_is_one_line_value_error(html_profile, depth):
    with pytest.raises(ValueError, match=rf"^depth must be a positive integer or None, got {re.escape(repr(depth))}$"):
        html_profile.to_html(depth=depth)
    with pytest.raises(ValueError, match="^depth must be a positive integer or None"):
        render(html_profile.memory, "html", depth)  # the memory page reads depth too


def test_a_report_counted_to_depth_0_still_gets_a_page(html_profile):
    root = Tree(dataclasses.replace(html_profile, depth=0).to_html()).root  # count(..., depth=0): totals only
    assert [o.attrs["value"] for o in root.by_id("depth").all("option") if "selected" in o.attrs] == ["all"]


def test_the_other_results_get_pages(html_profile):
    memory = Tree(render(html_profile.memory, "html")).root
    assert [s.attrs["id"] for s in memory.all("section")] == ["memory"]
    names = list(html_profile.memory.by_category)
    drawn = [n for i, n in enumerate(names) if any(p.by_category[i] for p in html_profile.memory.timeline)]
    assert [a.attrs["data-category"] for a in memory.by_id("chart-memory").all("path", "area")] == drawn
    assert "temporary" in drawn and "gradients" not in drawn  # inference: no gradients
    bench = Tree(render(html_profile.timing, "html")).root
    assert [s.attrs["id"] for s in bench.all("section")] == ["timing", "hardware"]


def test_the_command_line_writes_the_page(tmp_path):  # --format choices come from FORMATS
    out = tmp_path / "d.html"
    assert main(["--device-info", "--format", "html", "--output", str(out)]) == 0
    root = Tree(out.read_text()).root
    assert "logical_cpus" in root.by_id("result").text
    out = tmp_path / "r.html"
    assert main(["torchvision.models:resnet18", "--input-shape", "3,16,16", "--no-timing", "--depth", "2",
                 "--format", "html", "--output", str(out)]) == 0
    root = Tree(out.read_text()).root
    rows = list(next(root.by_id("layer-table").all("tbody")).all("tr"))
    assert len(rows) == 67 and rows[-1].attrs["data-name"] == "fc"  # every layer; depth 2 is only shown at first
    assert [o.attrs["value"] for o in root.by_id("depth").all("option") if "selected" in o.attrs] == ["2"]
    assert [s.attrs["id"] for s in root.all("section")] == ["totals", "layers"]  # counted only: no charts


def test_the_total_row_shows_the_models_memory_figures(page, html_profile):
    _, root = page
    table = root.by_id("layer-table")
    heads = [th.text for th in next(table.all("thead")).all("th")]
    total = dict(zip(heads, next(table.all("tfoot")).all("td")))
    forward = max(p.total for p in html_profile.memory.timeline if p.phase == "forward")
    assert forward >= max(m.forward_peak for m in html_profile.memory.layers) > 0
    assert total["Peak in fwd"].text == binary(forward) and total["Peak in fwd"].attrs["data-v"] == str(forward)
    assert total["Output"].text == "1x10" and "wrap" in total["Output"].attrs["class"]


def test_the_layer_table_wraps_names_and_types_where_they_read_well():
    import torchprof_lab
    from torch import nn

    model = nn.Sequential(nn.Sequential(nn.BatchNorm1d(4), nn.AdaptiveAvgPool1d(2)))
    root = Tree(torchprof_lab.count(model, (4, 6), batch_size=2).to_html()).root
    rows = {r.attrs["data-name"]: list(r.all("td")) for r in next(root.by_id("layer-table").all("tbody")).all("tr")}
    name, kind, output = rows["0.1"][:3]
    assert [item.tag if isinstance(item, Node) else item for item in next(name.all("span", "lname")).items] == \
        ["0.", "wbr", "1"]  # a break opportunity after each dot; the text is still the name
    assert [item.tag if isinstance(item, Node) else item for item in kind.items] == \
        ["Adaptive", "wbr", "Avg", "wbr", "Pool1d"]
    assert output.text == "2x4x2" and not list(output.all("wbr"))  # a shape stays whole
    assert [item.tag if isinstance(item, Node) else item for item in rows["0.0"][1].items] == \
        ["Batch", "wbr", "Norm1d"]
