import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import GPT2Kit
import Testing

/// `loss_curve.svg`: ticks at round values with labels, gridlines, axis labels, a legend, a loss range with margins,
/// every coordinate inside the drawing, and the data's extremes inside the plot area where the tick labels say.
@Suite struct LossCurveTests {
    /// One SVG element: its tag, attributes and (for `text`) its text.
    struct Element {
        var tag: String
        var attributes: [String: String]
        var text: String
        var classes: Set<String> { Set((attributes["class"] ?? "").split(separator: " ").map(String.init)) }
        func number(_ name: String) -> Double? { attributes[name].flatMap(Double.init) }
    }

    static func elements(_ svg: String) -> [Element] {
        let tag = /<([a-z]+)((?:\s+[A-Za-z0-9:-]+="[^"]*")*)\s*(\/?)>([^<]*)/
        let attribute = /([A-Za-z0-9:-]+)="([^"]*)"/
        return svg.matches(of: tag).map { m in
            var attributes: [String: String] = [:]
            for a in String(m.output.2).matches(of: attribute) { attributes[String(a.output.1)] = String(a.output.2) }
            return Element(tag: String(m.output.1), attributes: attributes, text: String(m.output.4))
        }
    }

    static func select(_ elements: [Element], _ tag: String, _ classes: String...) -> [Element] {
        elements.filter { $0.tag == tag && Set(classes).isSubset(of: $0.classes) }
    }

    /// Every x,y pair of a path's `d` (M/L commands only, which is what the curve writes).
    static func pathPoints(_ d: String) -> [(Double, Double)] {
        d.split(whereSeparator: { $0 == " " || $0 == "M" || $0 == "L" }).compactMap { pair in
            let xy = pair.split(separator: ",")
            guard xy.count == 2, let x = Double(xy[0]), let y = Double(xy[1]) else { return nil }
            return (x, y)
        }
    }

    struct PlotArea { var left, top, right, bottom: Double }

    static func plotArea(_ elements: [Element]) throws -> PlotArea {
        let rect = try #require(select(elements, "rect", "plot-area").first)
        let x = try #require(rect.number("x")), y = try #require(rect.number("y"))
        let w = try #require(rect.number("width")), h = try #require(rect.number("height"))
        return PlotArea(left: x, top: y, right: x + w, bottom: y + h)
    }

    /// The value → y mapping the y tick labels define (from the first and last labelled tick).
    static func lossToY(_ elements: [Element]) throws -> (Double) -> Double {
        let labels = select(elements, "text", "tick-label", "y")
        try #require(labels.count >= 2, "fewer than two y tick labels")
        let a = labels[0], b = labels[labels.count - 1]
        let va = try #require(Double(a.text)), vb = try #require(Double(b.text))
        let ya = try #require(a.number("y")), yb = try #require(b.number("y"))
        return { ya + (yb - ya) * ($0 - va) / (vb - va) }
    }

    /// Whether consecutive tick values differ by one round step, 1, 2 or 5 × 10^k.
    static func expectRoundSteps(_ values: [Double], _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(values.count >= 2, "\(what): \(values.count) ticks", sourceLocation: sourceLocation)
        guard values.count >= 2 else { return }
        let step = values[1] - values[0]
        let mantissa = step / pow(10, log10(step).rounded(.down))
        #expect([1.0, 2, 5, 10].contains { abs(mantissa - $0) < 1e-6 }, "\(what): step \(step) is not 1, 2 or 5 × 10^k",
                sourceLocation: sourceLocation)
        for (a, b) in zip(values, values.dropFirst()) {
            #expect(abs((b - a) - step) <= step * 1e-6, "\(what): uneven ticks \(values)", sourceLocation: sourceLocation)
        }
        for v in values {
            #expect(abs(v / step - (v / step).rounded()) < 1e-6, "\(what): tick \(v) is not a multiple of \(step)", sourceLocation: sourceLocation)
        }
    }

    /// Every coordinate (x, y, x1, …, cx, cy, path points, rect extents) inside the viewBox.
    static func expectInsideViewBox(_ svg: String, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let all = elements(svg)
        let root = try #require(all.first { $0.tag == "svg" }, sourceLocation: sourceLocation)
        let box = try #require(root.attributes["viewBox"], sourceLocation: sourceLocation).split(separator: " ").compactMap { Double($0) }
        try #require(box.count == 4, sourceLocation: sourceLocation)
        func inside(_ x: Double?, _ y: Double?, _ context: String) {
            if let x { #expect(x.isFinite && x >= box[0] && x <= box[0] + box[2], "\(what): x \(x) outside: \(context)", sourceLocation: sourceLocation) }
            if let y { #expect(y.isFinite && y >= box[1] && y <= box[1] + box[3], "\(what): y \(y) outside: \(context)", sourceLocation: sourceLocation) }
        }
        for e in all where e.tag != "svg" {
            let context = "<\(e.tag) \(e.attributes)>"
            inside(e.number("x"), e.number("y"), context)
            inside(e.number("x1"), e.number("y1"), context)
            inside(e.number("x2"), e.number("y2"), context)
            inside(e.number("cx"), e.number("cy"), context)
            if let x = e.number("x"), let w = e.number("width") { inside(x + w, nil, context) }
            if let y = e.number("y"), let h = e.number("height") { inside(nil, y + h, context) }
            if let d = e.attributes["d"] { for (x, y) in pathPoints(d) { inside(x, y, "path of \(e.classes)") } }
        }
    }

    /// The demo's curve: 20 steps from 11.13 down to 0.11.
    static let falling = (0..<20).map { 11.13 * pow(0.0099, Double($0) / 19) }

    @Test func ticksAreRoundAndLabelled() throws {
        let svg = LossCurve.svg(losses: Self.falling)
        let all = Self.elements(svg)
        let xLabels = Self.select(all, "text", "tick-label", "x").map(\.text)
        #expect(xLabels == ["0", "5", "10", "15", "20"], "\(xLabels)")
        let yLabels = Self.select(all, "text", "tick-label", "y").compactMap { Double($0.text) }
        #expect(yLabels.count == Self.select(all, "text", "tick-label", "y").count, "every y tick label is a number")
        Self.expectRoundSteps(yLabels, "y ticks")
        Self.expectRoundSteps(xLabels.compactMap(Double.init), "x ticks")
        #expect(yLabels.count >= 4 && yLabels.count <= 10, "\(yLabels)")
        #expect(Self.select(all, "line", "tick", "y").count == yLabels.count)
        #expect(Self.select(all, "line", "tick", "x").count == xLabels.count)
        #expect(Self.select(all, "line", "grid", "y").count == yLabels.count)
        #expect(Self.select(all, "line", "grid", "x").count == xLabels.count)
        for grid in Self.select(all, "line", "grid") { #expect(grid.attributes["stroke"] == "#e6e6e6", "gridlines are light") }
        #expect(Self.select(all, "text", "axis-label", "x").map(\.text) == ["step"])
        #expect(Self.select(all, "text", "axis-label", "y").map(\.text) == ["loss"])
        // Labels with the decimals the step needs: a step of 2 has none, of 0.5 one.
        let decimals = Self.select(all, "text", "tick-label", "y").map { $0.text.split(separator: ".").dropFirst().first?.count ?? 0 }
        #expect(Set(decimals).count == 1, "tick labels share their decimals: \(decimals)")
        try Self.expectInsideViewBox(svg, "falling")
    }

    @Test func extremesMapInsideThePlotAreaWithAMargin() throws {
        for (name, losses) in [("falling", Self.falling), ("noisy", (0..<300).map { 3 + sin(Double($0)) + Double($0 % 7) * 0.1 }),
                               ("tiny range", [2.5001, 2.5002, 2.5003, 2.5])] {
            let all = Self.elements(LossCurve.svg(losses: losses))
            let area = try Self.plotArea(all)
            let toY = try Self.lossToY(all)
            let lo = try #require(losses.min()), hi = try #require(losses.max())
            let yLow = toY(lo), yHigh = toY(hi)   // y grows downwards
            let height = area.bottom - area.top
            #expect(yLow < area.bottom && yHigh > area.top, "\(name): extremes at \(yHigh)…\(yLow), plot \(area.top)…\(area.bottom)")
            for (gap, which) in [(area.bottom - yLow, "below the minimum"), (yHigh - area.top, "above the maximum")] {
                #expect(gap >= 0.05 * height - 0.5 && gap <= 0.10 * height + 0.5, "\(name): \(gap / height * 100) % \(which)")
            }
            // The drawn line reaches exactly the extremes the tick labels place.
            let ys = Self.select(all, "path", "train").flatMap { Self.pathPoints($0.attributes["d"] ?? "") }.map(\.1)
            #expect(abs((ys.max() ?? .nan) - yLow) < 0.02 && abs((ys.min() ?? .nan) - yHigh) < 0.02,
                    "\(name): line spans \(ys.min() ?? .nan)…\(ys.max() ?? .nan), labels put the extremes at \(yHigh)…\(yLow)")
        }
    }

    @Test func equalLossesSitMidHeightNotOnAnEdge() throws {
        for value in [2.5, 0.0, 1e-3, 700] {
            let svg = LossCurve.svg(losses: [value, value, value, value])
            let all = Self.elements(svg)
            let area = try Self.plotArea(all)
            let ys = Self.select(all, "path", "train").flatMap { Self.pathPoints($0.attributes["d"] ?? "") }.map(\.1)
            try #require(ys.count == 4, "\(value): \(ys)")
            let middle = (area.top + area.bottom) / 2
            #expect(ys.allSatisfy { abs($0 - middle) < 0.02 * (area.bottom - area.top) }, "\(value): \(ys), middle \(middle)")
            #expect(abs(try Self.lossToY(all)(value) - middle) < 1, "\(value): the labels disagree with the line")
            Self.expectRoundSteps(Self.select(all, "text", "tick-label", "y").compactMap { Double($0.text) }, "\(value)")
            try Self.expectInsideViewBox(svg, "equal \(value)")
        }
    }

    @Test func legendNamesEvalOnlyWhenThereIsOne() throws {
        let plain = Self.elements(LossCurve.svg(losses: Self.falling))
        let withEval = Self.elements(LossCurve.svg(losses: Self.falling, evalLosses: [(5, 9.0), (10, 4.0), (20, 0.5)]))
        func legend(_ svg: String) -> [String] {
            guard let start = svg.range(of: "<g class=\"legend\">"), let end = svg[start.upperBound...].range(of: "</g>") else { return [] }
            return Self.elements(String(svg[start.upperBound..<end.lowerBound])).filter { $0.tag == "text" }.map(\.text)
        }
        #expect(legend(LossCurve.svg(losses: Self.falling)) == ["train"])
        #expect(legend(LossCurve.svg(losses: Self.falling, evalLosses: [(5, 9.0), (10, 4.0), (20, 0.5)])) == ["train", "eval"])
        #expect(legend(LossCurve.svg(losses: Self.falling, evalLosses: [(5, .nan)])) == ["train"], "a NaN eval is no eval")
        #expect(Self.select(plain, "circle", "eval").isEmpty)
        let points = Self.select(withEval, "circle", "eval")
        #expect(points.count == 3)
        let toY = try Self.lossToY(withEval)
        for (point, loss) in zip(points, [9.0, 4.0, 0.5]) { #expect(abs((point.number("cy") ?? .nan) - toY(loss)) < 0.02) }
        #expect(Self.select(withEval, "path", "eval").count == 1, "eval points are joined")
    }

    @Test func oneStepNonFiniteAndEmptyRunsStayInside() throws {
        let cases: [(String, [Double], [(step: Int, loss: Double)])] = [
            ("empty", [], []), ("one step", [11.13], []), ("one step, eval", [11.13], [(1, 10.5)]),
            ("NaN and inf", [5, 4, .nan, 3, .infinity, 2, 1, -.infinity], [(3, .nan), (6, 2.5)]),
            ("only NaN", [.nan, .nan], []), ("eval beyond the train steps", [3, 2], [(10, 1)]),
            ("huge", [1e300, 1], []), ("negative", [-1, -2, -3], []),
        ]
        for (name, losses, evals) in cases {
            let svg = LossCurve.svg(losses: losses, evalLosses: evals, title: "a <title> & \"quotes\"")
            try Self.expectInsideViewBox(svg, name)
            try Self.expectWellFormed(svg, name)
            let all = Self.elements(svg)
            #expect(Self.select(all, "text", "tick-label", "y").count >= 2, "\(name): y ticks")
            #expect(Self.select(all, "text", "tick-label", "x").count >= 2, "\(name): x ticks")
        }
        // NaN breaks the line instead of joining across it; the point left alone after the NaN is a dot.
        let all = Self.elements(LossCurve.svg(losses: [5, 4, .nan, 3, .infinity, 2, 1]))
        let d = try #require(Self.select(all, "path", "train").first?.attributes["d"])
        #expect(d.filter { $0 == "M" }.count == 2, "\(d)")
        #expect(Self.select(all, "circle", "train").count == 1)
        #expect(Self.select(Self.elements(LossCurve.svg(losses: [11.13])), "circle", "train").count == 1, "one step is a dot")
    }

    @Test func longRunsGetASmoothedLineAndStaySmall() throws {
        func trend(_ step: Int) -> Double { 10 * exp(-Double(step) / 4000) }
        let losses: [Double] = (0..<20_000).map { (i: Int) -> Double in trend(i) + 0.5 * sin(Double(i) * 0.7) }
        let evals: [(step: Int, loss: Double)] = stride(from: 1000, through: 20_000, by: 1000).map { (step: Int) in (step, trend(step)) }
        let svg = LossCurve.svg(losses: losses, evalLosses: evals)
        #expect(svg.utf8.count < 150_000, "\(svg.utf8.count) bytes")
        let all = Self.elements(svg)
        let smooth = try #require(Self.select(all, "path", "train-smoothed").first?.attributes["d"])
        let raw = try #require(Self.select(all, "path", "train").first?.attributes["d"])
        // Smoothing takes out the ±0.5 wiggle: the smoothed line's vertical spread in its last quarter is far smaller.
        func spread(_ d: String) -> Double {
            let points = Self.pathPoints(d)
            let tail = points.suffix(points.count / 4).map(\.1)
            return (tail.max() ?? 0) - (tail.min() ?? 0)
        }
        #expect(spread(smooth) < spread(raw) / 3, "smoothed \(spread(smooth)), raw \(spread(raw))")
        // Decimation keeps each pixel column's extremes: the raw line still spans the data's range.
        let toY = try Self.lossToY(all)
        let ys = Self.pathPoints(raw).map(\.1)
        #expect(abs((ys.max() ?? 0) - toY(losses.min() ?? 0)) < 0.02 && abs((ys.min() ?? 0) - toY(losses.max() ?? 0)) < 0.02)
        #expect(Self.select(all, "text").contains { $0.text == "train (smoothed)" })
        try Self.expectInsideViewBox(svg, "long")
        Self.expectRoundSteps(Self.select(all, "text", "tick-label", "x").compactMap { Double($0.text) }, "x ticks of a long run")
    }

    static func expectWellFormed(_ svg: String, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let parser = XMLParser(data: Data(svg.utf8))
        #expect(parser.parse(), "\(what): not well-formed XML: \(parser.parserError.map { "\($0)" } ?? "")", sourceLocation: sourceLocation)
    }
}
