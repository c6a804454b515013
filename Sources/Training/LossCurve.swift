import Foundation

/// Draws a loss curve as a small self-contained SVG document: the training loss per step, evaluation losses as
/// points, axes with ticks at round values (1, 2 or 5 × 10^k) and their labels, light gridlines, axis labels and a
/// legend. Non-finite losses (and absurd ones, beyond ±1e100) are left out (the line breaks there); the loss axis has a margin of 7 % of the data's
/// range above and below (a run whose losses are all equal gets a range around its value). Long runs (50 steps or
/// more) also get a smoothed training line (a bias-corrected exponential moving average), and runs of thousands of
/// steps keep only each pixel column's extremes, so the file stays small.
///
/// The elements carry classes for tools and tests: `plot-area` (a rect), `grid x|y`, `tick x|y`, `tick-label x|y`,
/// `axis x|y`, `axis-label x|y`, `train`, `train-smoothed`, `eval`, `legend`.
public enum LossCurve {
    /// Size of the drawing and of the plot area inside it (SVG user units).
    static let width = 720.0, height = 420.0
    static let plotLeft = 76.0, plotRight = 696.0, plotTop = 44.0, plotBottom = 360.0
    /// Fraction of the data's loss range added above and below it.
    static let marginFraction = 0.07
    /// Runs with at least this many finite training losses get a smoothed line.
    static let smoothingThreshold = 50

    /// An SVG line chart of `losses` (index = step − 1) and `evalLosses` (points at their steps).
    public static func svg(losses: [Double], evalLosses: [(step: Int, loss: Double)] = [], title: String = "training loss") -> String {
        let evals = evalLosses.filter { isPlottable($0.loss) && $0.step >= 1 }
        let finite = losses.filter(isPlottable) + evals.map(\.loss)
        let (yMin, yMax) = lossRange(finite)
        let lastStep = max(losses.count, evals.map(\.step).max() ?? 0, 1)
        let xMin = 0.0, xMax = Double(lastStep)
        func x(_ step: Double) -> Double { plotLeft + (plotRight - plotLeft) * (step - xMin) / (xMax - xMin) }
        func y(_ loss: Double) -> Double { plotBottom - (plotBottom - plotTop) * (loss - yMin) / (yMax - yMin) }

        var svg = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" \
        font-family="sans-serif" font-size="12">
        <rect width="\(Int(width))" height="\(Int(height))" fill="white"/>
        <text x="\(f((plotLeft + plotRight) / 2))" y="24" text-anchor="middle" font-size="15">\(escape(title))</text>
        <rect class="plot-area" x="\(f(plotLeft))" y="\(f(plotTop))" width="\(f(plotRight - plotLeft))" height="\(f(plotBottom - plotTop))" \
        fill="none" stroke="none"/>

        """
        // Gridlines and ticks.
        let yStep = niceStep(span: yMax - yMin, targetCount: 6)
        let yTicks = tickValues(from: yMin, to: yMax, step: yStep)
        let xStep = max(niceStep(span: xMax - xMin, targetCount: 6), 1)
        let xTicks = tickValues(from: xMin, to: xMax, step: xStep)
        for v in yTicks {
            let p = f(y(v))
            svg += "<line class=\"grid y\" x1=\"\(f(plotLeft))\" y1=\"\(p)\" x2=\"\(f(plotRight))\" y2=\"\(p)\" stroke=\"#e6e6e6\" stroke-width=\"1\"/>\n"
        }
        for v in xTicks {
            let p = f(x(v))
            svg += "<line class=\"grid x\" x1=\"\(p)\" y1=\"\(f(plotTop))\" x2=\"\(p)\" y2=\"\(f(plotBottom))\" stroke=\"#e6e6e6\" stroke-width=\"1\"/>\n"
        }
        svg += "<line class=\"axis x\" x1=\"\(f(plotLeft))\" y1=\"\(f(plotBottom))\" x2=\"\(f(plotRight))\" y2=\"\(f(plotBottom))\" stroke=\"black\"/>\n"
        svg += "<line class=\"axis y\" x1=\"\(f(plotLeft))\" y1=\"\(f(plotTop))\" x2=\"\(f(plotLeft))\" y2=\"\(f(plotBottom))\" stroke=\"black\"/>\n"
        for v in yTicks {
            let p = f(y(v))
            svg += "<line class=\"tick y\" x1=\"\(f(plotLeft - 5))\" y1=\"\(p)\" x2=\"\(f(plotLeft))\" y2=\"\(p)\" stroke=\"black\"/>\n"
            svg += "<text class=\"tick-label y\" x=\"\(f(plotLeft - 8))\" y=\"\(p)\" text-anchor=\"end\" dominant-baseline=\"middle\">"
                + "\(tickLabel(v, step: yStep))</text>\n"
        }
        for v in xTicks {
            let p = f(x(v))
            svg += "<line class=\"tick x\" x1=\"\(p)\" y1=\"\(f(plotBottom))\" x2=\"\(p)\" y2=\"\(f(plotBottom + 5))\" stroke=\"black\"/>\n"
            svg += "<text class=\"tick-label x\" x=\"\(p)\" y=\"\(f(plotBottom + 20))\" text-anchor=\"middle\">\(tickLabel(v, step: xStep))</text>\n"
        }
        svg += "<text class=\"axis-label x\" x=\"\(f((plotLeft + plotRight) / 2))\" y=\"\(f(height - 16))\" text-anchor=\"middle\">step</text>\n"
        let yLabelX = 20.0, yLabelY = (plotTop + plotBottom) / 2
        svg += "<text class=\"axis-label y\" x=\"\(f(yLabelX))\" y=\"\(f(yLabelY))\" text-anchor=\"middle\" "
            + "transform=\"rotate(-90 \(f(yLabelX)) \(f(yLabelY)))\">loss</text>\n"
        if finite.isEmpty {
            svg += "<text x=\"\(f((plotLeft + plotRight) / 2))\" y=\"\(f(yLabelY))\" text-anchor=\"middle\" fill=\"#666666\">no finite loss values</text>\n"
        }

        // The training line: one path, broken where a loss is not finite; isolated points get a dot.
        let smoothed = losses.lazy.filter(isPlottable).count >= smoothingThreshold
        let rawColor = smoothed ? "#9ecae1" : "#1f77b4"
        var path = "", dots: [(Double, Double)] = []
        for segment in finiteSegments(losses) {
            let points = decimated(segment, pixelOf: { x(Double($0 + 1)) }).map { (x(Double($0.index + 1)), y($0.loss)) }
            guard let first = points.first else { continue }
            if points.count == 1 { dots.append(first); continue }
            path += "M" + points.map { "\(f($0.0)),\(f($0.1))" }.joined(separator: " L") + " "
        }
        if !path.isEmpty {
            svg += "<path class=\"train\" fill=\"none\" stroke=\"\(rawColor)\" stroke-width=\"\(smoothed ? 1 : 2)\" "
                + "stroke-linejoin=\"round\" d=\"\(path.dropLast())\"/>\n"
        }
        for (px, py) in dots {
            svg += "<circle class=\"train\" cx=\"\(f(px))\" cy=\"\(f(py))\" r=\"3\" fill=\"\(rawColor)\"/>\n"
        }
        if smoothed {
            let ema = smoothedLosses(losses)
            let points = decimated(ema, pixelOf: { x(Double($0 + 1)) }).map { "\(f(x(Double($0.index + 1)))),\(f(y($0.loss)))" }
            if points.count >= 2 {
                svg += "<path class=\"train-smoothed\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" stroke-linejoin=\"round\" "
                    + "d=\"M\(points.joined(separator: " L"))\"/>\n"
            }
        }
        // Evaluation losses: points joined by a dashed line.
        let evalPoints = evals.sorted { $0.step < $1.step }.map { (x: x(Double($0.step)), y: y($0.loss), step: $0.step, loss: $0.loss) }
        if evalPoints.count >= 2 {
            svg += "<path class=\"eval\" fill=\"none\" stroke=\"#d62728\" stroke-width=\"1.5\" stroke-dasharray=\"5 3\" "
                + "d=\"M\(evalPoints.map { "\(f($0.x)),\(f($0.y))" }.joined(separator: " L"))\"/>\n"
        }
        for e in evalPoints {
            svg += "<circle class=\"eval\" cx=\"\(f(e.x))\" cy=\"\(f(e.y))\" r=\"3.5\" fill=\"#d62728\">"
                + "<title>step \(e.step): eval loss \(tickLabel(e.loss, step: 0.0001))</title></circle>\n"
        }

        // Legend, top right inside the plot area (a loss curve usually falls, leaving that corner empty).
        var entries: [(label: String, color: String, width: Double, dashed: Bool, dot: Bool)] = []
        if !losses.isEmpty { entries.append(("train", rawColor, smoothed ? 1 : 2, false, false)) }
        if smoothed { entries.append(("train (smoothed)", "#1f77b4", 2, false, false)) }
        if !evals.isEmpty { entries.append(("eval", "#d62728", 1.5, true, true)) }
        if !entries.isEmpty {
            // About 7 units per character of the 12-unit sans-serif font.
            let rowHeight = 18.0, boxWidth = 52 + 7 * Double(entries.map(\.label.count).max() ?? 0)
            let boxHeight = rowHeight * Double(entries.count) + 8
            let boxLeft = plotRight - boxWidth - 8, boxTop = plotTop + 8
            svg += "<g class=\"legend\">\n<rect x=\"\(f(boxLeft))\" y=\"\(f(boxTop))\" width=\"\(f(boxWidth))\" height=\"\(f(boxHeight))\" "
                + "fill=\"white\" fill-opacity=\"0.85\" stroke=\"#cccccc\"/>\n"
            for (i, entry) in entries.enumerated() {
                let rowY = boxTop + 4 + rowHeight * (Double(i) + 0.5)
                svg += "<line x1=\"\(f(boxLeft + 8))\" y1=\"\(f(rowY))\" x2=\"\(f(boxLeft + 32))\" y2=\"\(f(rowY))\" stroke=\"\(entry.color)\" "
                    + "stroke-width=\"\(entry.width)\"\(entry.dashed ? " stroke-dasharray=\"5 3\"" : "")/>\n"
                if entry.dot { svg += "<circle cx=\"\(f(boxLeft + 20))\" cy=\"\(f(rowY))\" r=\"3.5\" fill=\"\(entry.color)\"/>\n" }
                svg += "<text x=\"\(f(boxLeft + 40))\" y=\"\(f(rowY))\" dominant-baseline=\"middle\">\(entry.label)</text>\n"
            }
            svg += "</g>\n"
        }
        svg += "</svg>\n"
        return svg
    }

    /// Whether a loss is drawn: finite and of a size whose range cannot overflow (|v| ≤ 1e100).
    static func isPlottable(_ value: Double) -> Bool { value.isFinite && abs(value) <= 1e100 }

    /// The loss axis's range: the finite values' range widened by `marginFraction` on each side; a single value gets ±10 % of itself (at least ±0.1); no value gets 0…1.
    static func lossRange(_ values: [Double]) -> (Double, Double) {
        guard let lo = values.min(), let hi = values.max() else { return (0, 1) }
        if hi - lo <= Swift.max(abs(lo), abs(hi)) * 1e-12 {
            let half = Swift.max(abs(lo) * 0.1, 0.1)
            return (lo - half, hi + half)
        }
        let margin = (hi - lo) * marginFraction
        return (lo - margin, hi + margin)
    }

    /// The round step (1, 2 or 5 × 10^k) nearest to cutting `span` into `targetCount` intervals (Heckbert's
    /// "nice numbers": between about 0.7 and 1.5 times as many).
    static func niceStep(span: Double, targetCount: Int) -> Double {
        guard span > 0, span.isFinite else { return 1 }
        let raw = span / Double(Swift.max(targetCount, 1))
        let magnitude = pow(10, (log10(raw)).rounded(.down))
        let residual = raw / magnitude
        let nice: Double = residual < 1.5 ? 1 : residual < 3 ? 2 : residual < 7 ? 5 : 10
        return nice * magnitude
    }

    /// The multiples of `step` in `lo…hi`.
    static func tickValues(from lo: Double, to hi: Double, step: Double) -> [Double] {
        let first = (lo / step).rounded(.up), last = (hi / step).rounded(.down)
        guard first <= last, last - first < 1000 else { return [] }
        return stride(from: first, through: last, by: 1).map { k in
            let v = k * step
            return abs(v) < step * 1e-9 ? 0 : v
        }
    }

    /// `value` with as many decimals as `step` needs (none for whole steps); very small or large values in
    /// exponent notation.
    static func tickLabel(_ value: Double, step: Double) -> String {
        if abs(value) >= 1e7 || (step < 1e-6 && value != 0) { return String(format: "%.3g", value) }
        let decimals = step >= 1 ? 0 : Int(Swift.min(12, Swift.max(0, (-log10(step) - 1e-9).rounded(.up))))
        let text = String(format: "%.\(decimals)f", value)
        return text.hasPrefix("-") && Double(text) == 0 ? String(text.dropFirst()) : text
    }

    /// The runs of consecutive finite losses, each as (index, loss) pairs.
    static func finiteSegments(_ losses: [Double]) -> [[(index: Int, loss: Double)]] {
        var segments: [[(index: Int, loss: Double)]] = [], current: [(index: Int, loss: Double)] = []
        for (i, loss) in losses.enumerated() {
            if isPlottable(loss) { current.append((i, loss)); continue }
            if !current.isEmpty { segments.append(current); current = [] }
        }
        if !current.isEmpty { segments.append(current) }
        return segments
    }

    /// A bias-corrected exponential moving average of the finite losses (TensorBoard's smoothing), over a window of
    /// about 4 % of the run (5 to 500 steps); non-finite losses are skipped.
    static func smoothedLosses(_ losses: [Double]) -> [(index: Int, loss: Double)] {
        let count = losses.lazy.filter(isPlottable).count
        let window = Swift.min(500, Swift.max(5, Double(count) / 25))
        let beta = 1 - 1 / window
        var average = 0.0, correction = 1.0
        var out: [(index: Int, loss: Double)] = []
        out.reserveCapacity(count)
        for (i, loss) in losses.enumerated() where isPlottable(loss) {
            average = beta * average + (1 - beta) * loss
            correction *= beta
            out.append((i, average / (1 - correction)))
        }
        return out
    }

    /// At most four points per pixel column (its first, lowest, highest and last, in order) once a line has more
    /// points than the plot has pixels; shorter lines are returned as they are.
    static func decimated(_ points: [(index: Int, loss: Double)], pixelOf: (Int) -> Double) -> [(index: Int, loss: Double)] {
        guard points.count > Int(plotRight - plotLeft) else { return points }
        var out: [(index: Int, loss: Double)] = []
        var start = 0
        while start < points.count {
            let column = Int(pixelOf(points[start].index))
            var end = start
            while end + 1 < points.count, Int(pixelOf(points[end + 1].index)) == column { end += 1 }
            let bucket = points[start...end]
            var keep = Set([start, end])
            if let low = bucket.indices.min(by: { points[$0].loss < points[$1].loss }) { keep.insert(low) }
            if let high = bucket.indices.max(by: { points[$0].loss < points[$1].loss }) { keep.insert(high) }
            out += keep.sorted().map { points[$0] }
            start = end + 1
        }
        return out
    }

    /// A coordinate with two decimals.
    private static func f(_ v: Double) -> String { String(format: "%.2f", v) }

    private static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
