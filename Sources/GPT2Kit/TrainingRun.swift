import Foundation

/// A fine-tuning run on disk: the exported model folder plus `trainer_state/` (optimizer moments, progress,
/// options), so that `resume` continues bit-identically.
///
/// Layout of a run folder `out/`:
/// - `model.safetensors` (or the `--format` file), `config.json`, `generation_config.json`, tokenizer files
/// - `trainer_state/optimizer.safetensors` (AdamW `exp_avg`, `exp_avg_sq`, `step`), `trainer_state/trainer_state.json`
/// - `checkpoint-N/` intermediate checkpoints of the same layout (`--save-every N`)
/// - `loss_curve.svg`
public enum TrainingRun {
    /// What `trainer_state.json` holds.
    public struct SavedState: Codable, Sendable, Equatable {
        public var formatVersion = 1
        public var options: TrainingOptions
        public var progress: TrainerProgress
        public var totalSteps: Int
        /// The dropout override of the run, if any.
        public var dropout: Double?
        public var exportFormat: String
        /// CRC-32 of the weights file and of `optimizer.safetensors` as this save wrote them: a resume refuses a
        /// folder whose files do not match (a save interrupted between files).
        public var weightsCRC32: UInt32?
        public var optimizerCRC32: UInt32?

        public init(options: TrainingOptions, progress: TrainerProgress, totalSteps: Int, dropout: Double?, exportFormat: ExportFormat) {
            self.options = options
            self.progress = progress
            self.totalSteps = totalSteps
            self.dropout = dropout
            self.exportFormat = exportFormat.rawValue
        }
    }

    public static let stateFolderName = "trainer_state"

    /// Writes a complete checkpoint of `trainer` into `folder` (created; files replaced atomically).
    public static func save(_ trainer: Trainer, to folder: String, format: ExportFormat, config: GPT2Config,
                            dropout: Double?, tokenizerFiles: [String], generationConfigPath: String?) throws {
        try ModelIO.writeFolder(trainer.model.parameters, to: folder, format: format, config: config,
                                tokenizerFiles: tokenizerFiles, generationConfigPath: generationConfigPath)
        let stateFolder = folder + "/" + stateFolderName
        do { try FileManager.default.createDirectory(atPath: stateFolder, withIntermediateDirectories: true) } catch {
            throw ModelLoadError.cannotWrite(path: stateFolder, reason: error.localizedDescription)
        }
        try SafetensorsWriter.write(trainer.optimizer.exportState(), to: stateFolder + "/optimizer.safetensors")
        var saved = SavedState(options: trainer.options, progress: trainer.progress, totalSteps: trainer.totalSteps,
                               dropout: dropout, exportFormat: format)
        saved.weightsCRC32 = try crc32(ofFile: folder + "/" + format.weightsFileName)
        saved.optimizerCRC32 = try crc32(ofFile: stateFolder + "/optimizer.safetensors")
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try ModelIO.writeAtomically(try encoder.encode(saved), to: stateFolder + "/trainer_state.json")
    }

    /// Writes an intermediate checkpoint as `run/checkpoint-<step>/`, built in a temporary folder and renamed
    /// into place so a crash never leaves a half-written checkpoint.
    @discardableResult
    public static func saveCheckpoint(_ trainer: Trainer, run: String, format: ExportFormat, config: GPT2Config,
                                      dropout: Double?, tokenizerFiles: [String], generationConfigPath: String?) throws -> String {
        let fm = FileManager.default
        let final = run + "/checkpoint-\(trainer.progress.step)"
        let temporary = run + "/.checkpoint-\(trainer.progress.step).partial"
        try? fm.removeItem(atPath: temporary)
        try save(trainer, to: temporary, format: format, config: config, dropout: dropout,
                 tokenizerFiles: tokenizerFiles, generationConfigPath: generationConfigPath)
        try? fm.removeItem(atPath: final)
        do { try fm.moveItem(atPath: temporary, toPath: final) } catch {
            throw ModelLoadError.cannotWrite(path: final, reason: error.localizedDescription)
        }
        return final
    }

    /// The checkpoint folder to resume from: `path` itself when it holds `trainer_state/`, else its newest `checkpoint-N/`.
    public static func resumableFolder(_ path: String) throws -> String {
        let fm = FileManager.default
        var candidates: [(Int, String)] = []
        if let saved = try? readState(folder: path) { candidates.append((saved.progress.step, path)) }
        for name in (try? fm.contentsOfDirectory(atPath: path)) ?? [] where name.hasPrefix("checkpoint-") {
            if let n = Int(name.dropFirst("checkpoint-".count)),
               fm.fileExists(atPath: path + "/" + name + "/" + stateFolderName + "/trainer_state.json") {
                candidates.append((n, path + "/" + name))
            }
        }
        guard let best = candidates.max(by: { $0.0 < $1.0 }) else { throw TrainingRunError.nothingToResume(path: path) }
        return best.1
    }

    /// Reads `folder/trainer_state/trainer_state.json`.
    public static func readState(folder: String) throws -> SavedState {
        let path = folder + "/" + stateFolderName + "/trainer_state.json"
        guard InputFile.isRegularFile(path) || FileManager.default.fileExists(atPath: path) else {
            throw TrainingRunError.nothingToResume(path: folder)
        }
        let data: Data
        do { data = Data(try InputFile.readBytes(path, maximumBytes: InputLimits.maximumConfigBytes)) } catch {
            throw TrainingRunError.invalidState(path: path, reason: error.reason)
        }
        do { return try JSONDecoder().decode(SavedState.self, from: data) } catch {
            throw TrainingRunError.invalidState(path: path, reason: "\(error)")
        }
    }

    /// Reads the optimizer state of a checkpoint folder.
    public static func readOptimizerState(folder: String) throws -> StateDict {
        try SafetensorsReader.read(path: folder + "/" + stateFolderName + "/optimizer.safetensors")
    }

    /// Checks that the weights and optimizer files of `folder` are the ones its `trainer_state.json` was saved
    /// with (states written before the checksums existed pass).
    public static func verifyFiles(folder: String, state: SavedState) throws {
        if let expected = state.weightsCRC32, let format = ExportFormat(rawValue: state.exportFormat) {
            let path = folder + "/" + format.weightsFileName
            guard try crc32(ofFile: path) == expected else { throw TrainingRunError.tornSave(path: path) }
        }
        if let expected = state.optimizerCRC32 {
            let path = folder + "/" + stateFolderName + "/optimizer.safetensors"
            guard try crc32(ofFile: path) == expected else { throw TrainingRunError.tornSave(path: path) }
        }
    }

    /// CRC-32 of a whole file (memory-mapped).
    static func crc32(ofFile path: String) throws -> UInt32 {
        guard let storage = ByteStorage.mapFile(atPath: path) else { throw TrainingRunError.tornSave(path: path) }
        return ZipArchive.crc32(of: storage.bytes)
    }
}

/// Why a run could not be resumed.
public enum TrainingRunError: Error, Sendable, CustomStringConvertible, Equatable {
    case nothingToResume(path: String)
    case invalidState(path: String, reason: String)
    case tornSave(path: String)

    public var description: String {
        switch self {
        case let .nothingToResume(p): return "\(p): no trainer_state/ and no checkpoint-N/ folder to resume from"
        case let .invalidState(p, r): return "\(p): unreadable trainer state: \(r)"
        case let .tornSave(p):
            return "\(p): does not match trainer_state.json (a save was interrupted); resume from the newest checkpoint-N/ instead"
        }
    }
}
