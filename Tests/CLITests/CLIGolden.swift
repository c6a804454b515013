import Foundation
import GPT2Kit
import Testing
import TestSupport

/// Golden-file and parameter helpers for the CLI-level suites.
enum CLIGolden {
    static func micro() throws -> [String: Any] {
        try #require(try Fixtures.json("micro-gpt2/goldens.json") as? [String: Any])
    }
    static func tiny() throws -> [String: Any] {
        try #require(try Fixtures.json("tiny-gpt2/goldens.json") as? [String: Any])
    }
    static func ints(_ any: Any?) throws -> [Int] {
        let a = try #require(any as? [Any])
        return try a.map { try #require(($0 as? NSNumber)?.intValue) }
    }
    static func double(_ any: Any?) throws -> Double { try #require((any as? NSNumber)?.doubleValue) }
    static func doubles(_ any: Any?) throws -> [Double] {
        let a = try #require(any as? [Any])
        return try a.map { try #require(($0 as? NSNumber)?.doubleValue) }
    }

    /// Expects two parameter sets to be bit-identical, naming the first differing tensor and element.
    static func expectBitIdentical(_ actual: GPT2Parameters, _ expected: GPT2Parameters, _ what: String,
                                   sourceLocation: SourceLocation = #_sourceLocation) {
        guard actual.layout.totalCount == expected.layout.totalCount else {
            Issue.record("\(what): \(actual.layout.totalCount) parameters, expected \(expected.layout.totalCount)", sourceLocation: sourceLocation)
            return
        }
        for e in expected.layout.entries {
            let a = actual.storage[e.range], b = expected.storage[e.range]
            if let i = a.indices.first(where: { a[$0].bitPattern != b[$0].bitPattern }) {
                Issue.record("\(what): \(e.name)[\(i - a.startIndex)] = \(a[i]), expected \(b[i]) (bits differ)", sourceLocation: sourceLocation)
                return
            }
        }
    }
}
