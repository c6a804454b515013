import Foundation
import Tensors

/// Locates the project's `fixtures/` folder from a test source file.
public enum Fixtures {
    /// Absolute path of `fixtures/` at the package root.
    public static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        while url.pathComponents.count > 1 {
            url.deleteLastPathComponent()
            let candidate = url.appendingPathComponent("fixtures")
            if FileManager.default.fileExists(atPath: candidate.appendingPathComponent("README.md").path) { return candidate.path }
        }
        return "fixtures"
    }()

    /// Absolute path of a file below `fixtures/`.
    public static func path(_ relative: String) -> String { root + "/" + relative }

    /// Parsed JSON of a fixture file.
    public static func json(_ relative: String) throws -> Any {
        let data = try Data(contentsOf: URL(fileURLWithPath: path(relative)))
        return try JSONSerialization.jsonObject(with: data)
    }

    /// A fresh temporary directory, removed by the caller.
    public static func temporaryDirectory() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gpt2kit-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.path
    }
}

/// `allclose`-style comparison: |a − b| ≤ atol + rtol·|b|.
public func isClose(_ a: Double, _ b: Double, rtol: Double, atol: Double = 0) -> Bool {
    abs(a - b) <= atol + rtol * abs(b)
}
