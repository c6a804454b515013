import ArgumentParser
import Foundation
import GPT2Kit

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check that two checkpoints hold the same GPT-2 (tensor by tensor, then one forward pass), or a model against PyTorch.",
        discussion: "A and B are folders or weights files in any format gpt2kit reads. Tensors are compared under their canonical "
            + "names after decoding to float32, within what the two stored types allow (F32, F16, BF16, Q8_0; see README "
            + "\"Verify\"); then the prompt runs through both models (logits, loss, greedy tokens). With --reference, A's forward "
            + "pass is checked against PyTorch's from scripts/reference.py. Exit status 1 when anything exceeds its tolerance.")

    @Argument(help: "Model folder or weights file A.") var a: String
    @Argument(help: "Model folder or weights file B (not with --reference).") var b: String?
    @Option(help: "A JSON file from scripts/reference.py: check A's forward pass against PyTorch's.") var reference: String?
    @Option(help: "Prompt for the forward pass (default \"\(ModelVerification.defaultPrompt)\"; with --reference, the reference's).")
    var prompt: String?
    @Option(help: "Tokenizer folder (default: A's folder or GGUF, else B's).") var tokenizer: String?
    @Option(name: .customLong("config-a"), help: "config.json for A when it is a single weights file without one beside it.") var configA: String?
    @Option(name: .customLong("config-b"), help: "config.json for B, likewise.") var configB: String?
    @Option(name: .customLong("adapter-a"), help: "PEFT adapter folder applied to A, unmerged, in the forward pass.") var adapterA: String?
    @Option(name: .customLong("adapter-b"), help: "PEFT adapter folder applied to B, unmerged, in the forward pass.") var adapterB: String?
    @Flag(help: "Print one JSON object with everything (and nothing else on stdout).") var json = false

    func validate() throws {
        if reference == nil, b == nil { throw ValidationError("<b>: required argument missing (or give --reference)") }
        if reference != nil, b != nil { throw ValidationError("--reference: checks A against PyTorch; give B or --reference, not both") }
        if reference != nil, configB != nil || adapterB != nil {
            throw ValidationError("\(configB != nil ? "--config-b" : "--adapter-b"): there is no B with --reference")
        }
    }

    func run() throws {
        try reportingErrors {
            let modelA = ModelVerification.Checkpoint(path: a, configPath: configA, adapter: adapterA)
            if let reference {
                let report = try ModelVerification.check(modelA, reference: reference, prompt: prompt, tokenizer: tokenizer)
                if json { Console.out(String(decoding: try report.jsonData(), as: UTF8.self)) } else { VerificationPrinter.print(report) }
                if !report.passed { throw ExitCode.failure }
                return
            }
            guard let b else { throw ValidationError("<b>: required argument missing (or give --reference)") }
            let modelB = ModelVerification.Checkpoint(path: b, configPath: configB, adapter: adapterB)
            let report = try ModelVerification.compare(modelA, modelB, prompt: prompt ?? ModelVerification.defaultPrompt, tokenizer: tokenizer)
            if json { Console.out(String(decoding: try report.jsonData(), as: UTF8.self)) } else { VerificationPrinter.print(report) }
            if !report.passed { throw ExitCode.failure }
        }
    }
}

/// The human-readable verification report: a compact table, the forward pass, then the verdict line.
enum VerificationPrinter {
    static func print(_ r: ModelComparison) {
        Console.out("A: " + describe(r.a))
        Console.out("B: " + describe(r.b))
        let nameWidth = min(48, max(6, r.tensors.map(\.name.count).max() ?? 6))
        let header = ["tensor".padding(nameWidth), "A".padding(5), "B".padding(5), "shape".padding(14),
                      "max abs diff".padding(13), "max rel diff".padding(13), "result"]
        Console.out(header.joined(separator: " "))
        for t in r.tensors {
            let shape = (t.shapeA ?? t.shapeB).map { "\($0)" } ?? "-"
            let fields = [t.name.padding(nameWidth), (t.storedTypeA ?? "-").padding(5), (t.storedTypeB ?? "-").padding(5),
                          (t.status == .shapeMismatch ? "\(t.shapeA ?? []) ≠ \(t.shapeB ?? [])" : shape).padding(14),
                          number(t.maxAbsDiff).padding(13), number(t.maxRelDiff).padding(13), result(t.status)]
            Console.out(fields.joined(separator: " "))
        }
        for d in r.configDifferences { Console.out("config: \(d.key) \(d.a) in A, \(d.b) in B") }
        if let f = r.forward {
            Console.out(forwardLine(f, names: ("A", "B")))
        } else if let skipped = r.forwardSkipped {
            Console.out("forward: not run: \(skipped)")
        }
        Console.out(r.verdict)
    }

    static func print(_ r: ReferenceComparison) {
        Console.out("A: " + describe(r.model))
        Console.out("reference: \(r.reference) (torch \(r.torch), transformers \(r.transformers))")
        Console.out("token ids: \(r.ids)" + (r.idsEqual ? " (equal)" : " ≠ PyTorch's \(r.referenceIds)"))
        if let f = r.forward { Console.out(forwardLine(f, names: ("GPT2Kit", "PyTorch"))) }
        Console.out(r.verdict)
    }

    static func describe(_ s: CheckpointSummary) -> String {
        let types = s.storedTypes.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", ")
        var line = "\(s.weights) (\(s.format); \(types.isEmpty ? "no GPT-2 tensors" : types))"
        if let adapter = s.adapter { line += " + adapter \(adapter)" }
        if let error = s.loadError { line += "; does not load: \(error)" }
        return line
    }

    static func forwardLine(_ f: ForwardComparison, names: (String, String)) -> String {
        let t = f.tolerance
        let equal = zip(f.greedyA, f.greedyB).filter { $0.0 == $0.1 }.count
        return "forward \"\(f.prompt)\" (\(f.ids.count) tokens): logits max abs diff \(number(f.maxAbsLogitDiff)) "
            + "(allowed \(number(t.logitsAtol)) + \(number(t.logitsRtol))·|x|"
            + (t.logitsScaleRelative > 0 ? " + \(number(t.logitsScaleRelative))·max|logit|" : "") + "), loss \(String(format: "%.7g", f.lossA)) in \(names.0), \(String(format: "%.7g", f.lossB)) in \(names.1) "
            + "(diff \(number(f.lossDiff)), allowed \(number(f.lossAllowed))), greedy tokens equal at \(equal)/\(f.greedyA.count) positions"
    }

    static func number(_ x: Double?) -> String {
        guard let x else { return "-" }
        return x == 0 ? "0" : String(format: "%.2e", x)
    }

    static func result(_ s: TensorComparison.Status) -> String {
        switch s {
        case .identical: return "identical"
        case .withinTolerance: return "ok"
        case .differs: return "FAIL"
        case .shapeMismatch: return "FAIL shape"
        case .missingInA: return "FAIL missing in A"
        case .missingInB: return "FAIL missing in B"
        case .extraInA: return "FAIL extra in A"
        case .extraInB: return "FAIL extra in B"
        case .notFloat: return "FAIL not float"
        }
    }
}
