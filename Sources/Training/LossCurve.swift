/// Draws a loss curve as a small self-contained SVG document.
public enum LossCurve {
    /// An SVG line chart of `losses` (index = step − 1), with axes labelled by step and loss range.
    public static func svg(losses: [Double], evalLosses: [(step: Int, loss: Double)] = [], title: String = "training loss") -> String {
        let width = 640.0, height = 360.0, left = 60.0, right = 20.0, top = 30.0, bottom = 40.0
        let finite = (losses + evalLosses.map(\.loss)).filter(\.isFinite)
        let lo = finite.min() ?? 0, hi = finite.max() ?? 1
        let span = hi > lo ? hi - lo : 1
        let steps = max(losses.count, (evalLosses.map(\.step).max() ?? 1), 2)
        func x(_ step: Int) -> Double { left + (width - left - right) * Double(step - 1) / Double(steps - 1) }
        func y(_ loss: Double) -> Double { top + (height - top - bottom) * (1 - (loss - lo) / span) }
        func fmt(_ v: Double) -> String { String(Double(Int((v * 100).rounded())) / 100) }
        var points: [String] = []
        for (i, l) in losses.enumerated() where l.isFinite { points.append("\(fmt(x(i + 1))),\(fmt(y(l)))") }
        var svg = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(fmt(width / 2))" y="18" text-anchor="middle" font-size="14">\(escape(title))</text>
        <line x1="\(left)" y1="\(height - bottom)" x2="\(width - right)" y2="\(height - bottom)" stroke="black"/>
        <line x1="\(left)" y1="\(top)" x2="\(left)" y2="\(height - bottom)" stroke="black"/>
        <text x="\(left - 6)" y="\(fmt(y(hi)) )" text-anchor="end" dominant-baseline="middle">\(String(format4(hi)))</text>
        <text x="\(left - 6)" y="\(fmt(y(lo)))" text-anchor="end" dominant-baseline="middle">\(String(format4(lo)))</text>
        <text x="\(left)" y="\(height - bottom + 16)" text-anchor="middle">1</text>
        <text x="\(width - right)" y="\(height - bottom + 16)" text-anchor="middle">\(steps)</text>
        <text x="\(fmt(width / 2))" y="\(height - 8)" text-anchor="middle">step</text>
        <polyline fill="none" stroke="#1f77b4" stroke-width="2" points="\(points.joined(separator: " "))"/>

        """
        for e in evalLosses where e.loss.isFinite {
            svg += "<circle cx=\"\(fmt(x(e.step)))\" cy=\"\(fmt(y(e.loss)))\" r=\"4\" fill=\"#d62728\"><title>eval \(format4(e.loss))</title></circle>\n"
        }
        svg += "</svg>\n"
        return svg
    }

    private static func format4(_ v: Double) -> String {
        let scaled = (v * 10_000).rounded() / 10_000
        return String(scaled)
    }

    private static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}

private extension String {
    func replacingOccurrences(of a: String, with b: String) -> String { split(separator: a, omittingEmptySubsequences: false).joined(separator: b) }
}
