import Testing

/// Expects `actual` within `atol + rtol·|expected|` of `expected`, reporting both and the error.
public func expectClose(_ actual: Double, _ expected: Double, rtol: Double, atol: Double = 0,
                        _ what: @autoclosure () -> String = "",
                        sourceLocation: SourceLocation = #_sourceLocation) {
    let ok = isClose(actual, expected, rtol: rtol, atol: atol)
    #expect(ok, "\(what()): actual \(actual), expected \(expected), |err| \(abs(actual - expected)) > \(atol) + \(rtol)·|expected|",
            sourceLocation: sourceLocation)
}

/// Expects every element close; reports the worst element.
public func expectAllClose(_ actual: [Double], _ expected: [Double], rtol: Double, atol: Double = 0,
                           _ what: @autoclosure () -> String = "",
                           sourceLocation: SourceLocation = #_sourceLocation) {
    guard actual.count == expected.count else {
        Issue.record("\(what()): \(actual.count) values, expected \(expected.count)", sourceLocation: sourceLocation)
        return
    }
    var worst = -1, worstExcess = 0.0
    for i in actual.indices {
        let excess = abs(actual[i] - expected[i]) - (atol + rtol * abs(expected[i]))
        if excess > worstExcess || (excess > 0 && worst < 0) { worst = i; worstExcess = excess }
    }
    if worst >= 0 {
        Issue.record("\(what()): element \(worst): actual \(actual[worst]), expected \(expected[worst]) (tolerance atol \(atol), rtol \(rtol))",
                     sourceLocation: sourceLocation)
    }
}
