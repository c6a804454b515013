import Foundation

/// One side of a verification: the checkpoint's weights as stored, matched to the parameter table of its config,
/// and the model they make (nil when they do not make one: the reason is reported, not thrown).
struct LoadedCheckpoint {
    let checkpoint: ModelVerification.Checkpoint
    let location: ModelLocation
    let config: GPT2Config
    let stateDict: StateDict
    /// Stored element types that `stateDict` no longer shows (GGUF's Q8_0 is dequantized), by stored name.
    let storedTypeOverrides: [String: String]
    let match: StateDictMatch
    let model: GPT2Model?
    /// Why the weights do not load as a model.
    let loadFailure: Error?

    /// Reads `checkpoint`, model `side` ("A" or "B") of the verification.
    init(_ checkpoint: ModelVerification.Checkpoint, side: String) throws {
        self.checkpoint = checkpoint
        location = try ModelLocation(path: checkpoint.path, configPath: checkpoint.configPath)
        if location.weightsKind == .gguf {
            let contents = try GGUFModel.read(path: location.weightsPath)
            config = location.configPath == nil ? contents.config : try ModelIO.readConfig(location)
            stateDict = contents.stateDict
            storedTypeOverrides = contents.storedTypes
        } else {
            do { config = try ModelIO.readConfig(location) } catch ModelLocationError.noConfig(let weights) {
                throw VerificationError.noConfig(weights: weights, side: side)
            }
            stateDict = try ModelIO.readStateDict(location)
            storedTypeOverrides = [:]
        }
        try config.validate(path: location.configPath ?? location.weightsPath)
        match = GPT2Parameters.match(stateDict, config: config)
        let parameters: GPT2Parameters
        do {
            parameters = try ModelIO.parameters(config: config, stateDict: stateDict, location: location)
        } catch let error as ModelLoadError {
            model = nil
            loadFailure = error
            return
        }
        var adapter: LoRAAdapter?
        if let folder = checkpoint.adapter { adapter = try AdapterFiles.read(folder: folder, modelConfig: parameters.config) }
        model = try GPT2Model(parameters: parameters, trainable: .none(parameters.layout), adapter: adapter)
        loadFailure = nil
    }

    /// The reason the weights do not load, as reported (the mismatch itself, without the file names).
    var loadError: String? {
        guard let loadFailure else { return nil }
        if case let .weightsDoNotMatch(_, _, problem)? = loadFailure as? ModelLoadError { return "\(problem)" }
        return "\(loadFailure)"
    }

    func storedType(ofSource name: String) -> String? {
        storedTypeOverrides[name] ?? stateDict[name]?.dtype.rawValue
    }

    /// The parameter named `name` in canonical naming, with its stored type; nil when absent.
    func parameter(named name: String) -> (tensor: Tensor, storedType: String)? {
        guard let index = match.layout.entries.firstIndex(where: { $0.name == name }),
              let source = match.sourceNames[index], let tensor = match.tensor(at: index, in: stateDict) else { return nil }
        return (tensor, storedType(ofSource: source) ?? tensor.dtype.rawValue)
    }

    /// The stored precision of every parameter found.
    var precisions: [StoredPrecision] {
        match.sourceNames.compactMap { $0.flatMap(storedType(ofSource:)).flatMap(StoredPrecision.init(storedType:)) }
    }

    var summary: CheckpointSummary {
        var counts: [String: Int] = [:]
        for name in match.sourceNames.compactMap({ $0 }) { counts[storedType(ofSource: name) ?? "?", default: 0] += 1 }
        return CheckpointSummary(path: checkpoint.path, weights: location.weightsPath, format: location.weightsKind.rawValue,
                                 adapter: checkpoint.adapter, storedTypes: counts, loadError: loadError)
    }
}

extension ModelVerification {
    /// Every parameter of A's table, then those only B's table has, then the tensors that are no parameter.
    static func compareTensors(_ a: LoadedCheckpoint, _ b: LoadedCheckpoint) -> [TensorComparison] {
        var names = a.match.layout.entries.map(\.name)
        let known = Set(names)
        names += b.match.layout.entries.map(\.name).filter { !known.contains($0) }
        var rows = names.map { name in compareParameter(name, a.parameter(named: name), b.parameter(named: name),
                                                        inLayoutOfA: known.contains(name)) }
        for (side, status) in [(a, TensorComparison.Status.extraInA), (b, .extraInB)] {
            for name in side.match.unexpected {
                let t = side.stateDict[name]
                let type = side.storedType(ofSource: name)
                rows.append(TensorComparison(name: name, status: status,
                                             storedTypeA: status == .extraInA ? type : nil, storedTypeB: status == .extraInB ? type : nil,
                                             shapeA: status == .extraInA ? t?.shape.dims : nil, shapeB: status == .extraInB ? t?.shape.dims : nil))
            }
        }
        return rows
    }

    static func compareParameter(_ name: String, _ a: (tensor: Tensor, storedType: String)?, _ b: (tensor: Tensor, storedType: String)?,
                                 inLayoutOfA: Bool) -> TensorComparison {
        var row = TensorComparison(name: name, status: .identical, storedTypeA: a?.storedType, storedTypeB: b?.storedType,
                                   shapeA: a?.tensor.shape.dims, shapeB: b?.tensor.shape.dims)
        guard let a, let b else {
            row.status = a == nil && (b != nil || inLayoutOfA) ? .missingInA : .missingInB
            return row
        }
        guard a.tensor.shape == b.tensor.shape else { row.status = .shapeMismatch; return row }
        guard let pa = StoredPrecision(storedType: a.storedType), let pb = StoredPrecision(storedType: b.storedType) else {
            row.status = .notFloat
            return row
        }
        let tolerance = VerificationTolerance.weights(pa, pb)
        let values = ValueDifference(a.tensor.floats(), b.tensor.floats(), tolerance: tolerance)
        row.tolerance = tolerance
        row.maxAbsDiff = values.maxAbs
        row.maxRelDiff = values.maxRel
        row.bitIdentical = values.bitIdentical
        row.worst = values.worst
        row.status = values.bitIdentical ? .identical : values.passes ? .withinTolerance : .differs
        return row
    }
}

/// The differences between two tensors' float32 values (same count).
struct ValueDifference {
    var maxAbs = 0.0, maxRel = 0.0
    var bitIdentical = true
    var worst: TensorComparison.Element?
    var worstExcess = -Double.infinity
    var passes: Bool { worstExcess <= 0 }

    init(_ x: [Float], _ y: [Float], tolerance: WeightTolerance) {
        precondition(x.count == y.count, "\(x.count) values against \(y.count)")
        var scale: Float = 0
        for v in x where v.isFinite { scale = max(scale, abs(v)) }
        for v in y where v.isFinite { scale = max(scale, abs(v)) }
        for i in x.indices where x[i].bitPattern != y[i].bitPattern {
            bitIdentical = false
            let p = Double(x[i]), q = Double(y[i])
            let d = Self.difference(p, q)
            let magnitude = max(abs(p), abs(q))
            maxAbs = max(maxAbs, d)
            maxRel = max(maxRel, d == 0 ? 0 : magnitude.isFinite && magnitude > 0 ? d / magnitude : .infinity)
            let allowed = tolerance.allowed(p, q, scale: Double(scale))
            if d - allowed > worstExcess {
                worstExcess = d - allowed
                worst = TensorComparison.Element(index: i, a: p, b: q, allowed: allowed)
            }
        }
    }

    /// |p − q|, 0 for two NaNs or equal infinities, infinite when only one is NaN.
    static func difference(_ p: Double, _ q: Double) -> Double {
        if p.isNaN || q.isNaN { return p.isNaN && q.isNaN ? 0 : .infinity }
        return p == q ? 0 : abs(p - q)
    }
}
