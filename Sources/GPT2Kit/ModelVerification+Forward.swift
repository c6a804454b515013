import Foundation

/// One forward pass on a prompt's ids: the loss of every next token and the logits of every position.
struct ForwardRun {
    let ids: [TokenID]
    let loss: Double
    /// (T, V) row-major.
    let logits: [Float]
    let vocabularySize: Int

    /// Runs `model` on `ids` (one sequence, labels = ids: `GPT2LMHeadModel`'s loss).
    init(model: GPT2Model, ids: [TokenID], path: String) throws {
        let loss: Float?
        do {
            loss = try model.forward(inputIDs: ids, batchSize: 1, sequenceLength: ids.count, labels: ids)
        } catch {
            throw VerificationError.promptDoesNotFit(path: path, problem: error)
        }
        self.ids = ids
        self.loss = Double(loss ?? .nan)
        self.logits = model.withLogits { Array($0) }
        self.vocabularySize = model.config.vocabularySize
    }

    /// Numbers computed elsewhere (PyTorch's).
    init(ids: [TokenID], loss: Double, logits: [Float], vocabularySize: Int) {
        self.ids = ids; self.loss = loss; self.logits = logits; self.vocabularySize = vocabularySize
    }

    /// The first largest logit of every position (`torch.argmax`).
    var greedy: [TokenID] {
        let V = vocabularySize
        return (0 ..< logits.count / max(V, 1)).map { t in
            var best = 0
            for v in 1..<V where logits[t * V + v] > logits[t * V + best] { best = v }
            return best
        }
    }

    /// Compares two runs on the same ids with the same vocabulary; `names` label the sides in failure lines.
    static func compare(_ a: ForwardRun, _ b: ForwardRun, prompt: String, tolerance: ForwardTolerance,
                        names: (String, String) = ("A", "B")) -> ForwardComparison {
        precondition(a.logits.count == b.logits.count && a.vocabularySize == b.vocabularySize, "forward runs of different sizes")
        let V = a.vocabularySize
        var maxAbs = 0.0, maxRel = 0.0, worstExcess = -Double.infinity
        var worst = ForwardComparison.Logit(position: 0, token: 0, a: 0, b: 0, allowed: 0)
        // The largest |logit| of each position on either side (the scale of the rounding error there).
        var scales = [Double](repeating: 0, count: a.logits.count / max(V, 1))
        for i in a.logits.indices {
            for value in [a.logits[i], b.logits[i]] where value.isFinite { scales[i / V] = max(scales[i / V], Double(abs(value))) }
        }
        for i in a.logits.indices {
            let x = Double(a.logits[i]), y = Double(b.logits[i])
            let d = ValueDifference.difference(x, y)
            let magnitude = max(abs(x), abs(y))
            maxAbs = max(maxAbs, d)
            maxRel = max(maxRel, d == 0 ? 0 : magnitude.isFinite && magnitude > 0 ? d / magnitude : .infinity)
            let allowed = tolerance.allowedLogitDifference(x, y, scale: scales[i / V])
            if d - allowed > worstExcess {
                worstExcess = d - allowed
                worst = .init(position: i / V, token: i % V, a: x, b: y, allowed: allowed)
            }
        }
        let (nameA, nameB) = names
        let f = ModelVerification.format
        var failures: [String] = []
        if worstExcess > 0 {
            failures.append("logits max abs diff \(f(maxAbs)) > \(f(worst.allowed)) allowed (position \(worst.position), token \(worst.token): "
                            + "\(worst.a) in \(nameA), \(worst.b) in \(nameB))")
        }
        let lossDiff = ValueDifference.difference(a.loss, b.loss)
        let lossAllowed = tolerance.allowedLossDifference(a.loss, b.loss)
        if !(lossDiff <= lossAllowed) || a.loss.isNaN || b.loss.isNaN {
            failures.append("loss \(a.loss) in \(nameA), \(b.loss) in \(nameB): diff \(f(lossDiff)) > \(f(lossAllowed)) allowed")
        }
        let greedyA = a.greedy, greedyB = b.greedy
        for t in greedyA.indices where greedyA[t] != greedyB[t] {
            // A near-tie may flip within the logit tolerance; anything wider is a real difference.
            let top = Double(a.logits[t * V + greedyA[t]]), other = Double(a.logits[t * V + greedyB[t]])
            let allowed = tolerance.allowedLogitDifference(top, Double(b.logits[t * V + greedyA[t]]), scale: scales[t])
                + tolerance.allowedLogitDifference(other, Double(b.logits[t * V + greedyB[t]]), scale: scales[t])
            if top - other > allowed {
                failures.append("greedy token at position \(t): \(greedyA[t]) in \(nameA), \(greedyB[t]) in \(nameB) "
                                + "(\(nameA)'s gap between them \(f(top - other)) > \(f(allowed)) allowed)")
            }
        }
        return ForwardComparison(prompt: prompt, ids: a.ids, lossA: a.loss, lossB: b.loss, lossDiff: lossDiff, lossAllowed: lossAllowed,
                                 maxAbsLogitDiff: maxAbs, maxRelLogitDiff: maxRel, worstLogit: worst, greedyA: greedyA, greedyB: greedyB,
                                 greedyEqual: greedyA == greedyB, tolerance: tolerance, failures: failures)
    }
}
