import Foundation

/// A fine-tuning run on disk: the exported model folder plus `trainer_state/` (optimizer moments, progress,
/// options), so that `resume` continues bit-identically.
///
/// Layout of a run folder `out/`:
/// - `model.safetensors` (or the `--format` file), `config.json`, `generation_config.json`, tokenizer files; for a
///   LoRA run instead `adapter_model.safetensors` and `adapter_config.json` (PEFT's format, no base weights)
/// - `trainer_state/optimizer.safetensors` (AdamW `exp_avg`, `exp_avg_sq`, `step`), `trainer_state/trainer_state.json`
/// - `checkpoint-N/` intermediate checkpoints of the same layout (`--save-every N`)
/// - `loss_curve.svg`
public enum TrainingRun {
    /// What `trainer_state.json` holds.
    public struct SavedState: Codable, Sendable, Equatable {
        /// The version of this layout (1); another value is refused.
        public var formatVersion = 1
        /// The run's options (`batchSize` per process); a resume keeps them, except `steps` given again.
        public var options: TrainingOptions
        /// Step, data position, losses and data fingerprint at the save.
        public var progress: TrainerProgress
        /// Optimizer steps of the whole run as planned at the save.
        public var totalSteps: Int
        /// The dropout override of the run, if any.
        public var dropout: Double?
        /// The `ExportFormat` raw value of the saved weights (`safetensors`, `pytorch`, `h5`; `safetensors` for a
        /// LoRA run).
        public var exportFormat: String
        /// CRC-32 of the weights file (`weightsFileName`) as this save wrote it: a resume refuses a
        /// folder whose files do not match (a save interrupted between files).
        public var weightsCRC32: UInt32?
        /// CRC-32 of `optimizer.safetensors` as this save wrote it (checked on resume like `weightsCRC32`).
        public var optimizerCRC32: UInt32?
        /// For a LoRA run: the adapter's configuration (nil: a full run).
        public var lora: LoRAConfiguration?
        /// For a LoRA run: the base model it trains (absolute path), used on resume when `--model` is not given.
        public var baseModel: String?
        /// For a LoRA run: the base model's `--config` file (absolute path), if one was given.
        public var baseConfig: String?
        /// Processes of a data-parallel run (nil: one); `options.batchSize` is per process.
        public var processes: Int?

        /// The file whose CRC is `weightsCRC32`, relative to the saved folder.
        public var weightsFileName: String? {
            if lora != nil { return AdapterFiles.weightsFileName }
            return ExportFormat(rawValue: exportFormat)?.weightsFileName
        }

        /// Checks what `trainer_state.json` holds before any of it is used: it is not covered by the checksums.
        func validate(path: String) throws {
            guard formatVersion == 1 else { throw TrainingRunError.invalidState(path: path, reason: "formatVersion \(formatVersion) is not 1") }
            do { try options.validate() } catch { throw TrainingRunError.invalidState(path: path, reason: "\(error)") }
            guard ExportFormat(rawValue: exportFormat) != nil else {
                throw TrainingRunError.invalidState(path: path, reason: "unknown exportFormat '\(exportFormat)'")
            }
            if let dropout, !(dropout >= 0 && dropout < 1) {
                throw TrainingRunError.invalidState(path: path, reason: "dropout \(dropout) is not in [0, 1)")
            }
            guard totalSteps >= 1, progress.step >= 0, progress.step <= totalSteps || options.steps != nil else {
                throw TrainingRunError.invalidState(path: path, reason: "step \(progress.step) of \(totalSteps) total steps")
            }
            if let processes, processes < 1 {
                throw TrainingRunError.invalidState(path: path, reason: "processes \(processes) is not >= 1")
            }
            if let lora {
                do { try lora.validate() } catch { throw TrainingRunError.invalidState(path: path, reason: "lora: \(error)") }
                guard baseModel != nil else { throw TrainingRunError.invalidState(path: path, reason: "a LoRA run without baseModel") }
            }
        }

        /// The state of a full run; checksums, LoRA fields and `processes` are set by the caller.
        public init(options: TrainingOptions, progress: TrainerProgress, totalSteps: Int, dropout: Double?, exportFormat: ExportFormat) {
            self.options = options
            self.progress = progress
            self.totalSteps = totalSteps
            self.dropout = dropout
            self.exportFormat = exportFormat.rawValue
        }
    }

    /// The name of the folder that holds the optimizer state and `trainer_state.json`.
    public static let stateFolderName = "trainer_state"

    /// What a save writes besides `trainer_state/`.
    public enum Output {
        /// A complete model folder in `format` (full fine-tuning).
        /// `tokenizerData` are tokenizer files made in memory (from a GGUF base), written beside the copied ones.
        case model(format: ExportFormat, config: GPT2Config, tokenizerFiles: [String], generationConfigPath: String?,
                   tokenizerData: [(name: String, data: Data)] = [])
        /// The adapter only, in PEFT's format (LoRA); `baseModel` goes into `adapter_config.json`.
        case adapter(baseModel: String)
    }

    /// Writes a complete checkpoint of `trainer` into `folder` (created; files replaced atomically). `state` is the
    /// run's saved state without progress (it is filled in from the trainer).
    public static func save(_ trainer: Trainer, to folder: String, output: Output, state: SavedState) throws {
        let weightsFile: String
        switch output {
        case let .model(format, config, tokenizerFiles, generationConfigPath, tokenizerData):
            try ModelIO.writeFolder(trainer.model.parameters, to: folder, format: format, config: config,
                                    tokenizerFiles: tokenizerFiles, generationConfigPath: generationConfigPath, tokenizerData: tokenizerData)
            weightsFile = format.weightsFileName
        case let .adapter(baseModel):
            guard let adapter = trainer.model.adapter else { preconditionFailure("an adapter save of a model without adapter") }
            try AdapterFiles.write(adapter, to: folder, baseModel: baseModel)
            weightsFile = AdapterFiles.weightsFileName
        }
        let stateFolder = folder + "/" + stateFolderName
        do { try FileManager.default.createDirectory(atPath: stateFolder, withIntermediateDirectories: true) } catch {
            throw ModelLoadError.cannotWrite(path: stateFolder, reason: error.localizedDescription)
        }
        try SafetensorsWriter.write(trainer.optimizer.exportState(), to: stateFolder + "/optimizer.safetensors")
        var saved = state
        saved.options = trainer.options
        saved.progress = trainer.progress
        saved.totalSteps = trainer.totalSteps
        saved.processes = trainer.communicator.isDistributed ? trainer.communicator.size : nil
        saved.weightsCRC32 = try crc32(ofFile: folder + "/" + weightsFile)
        saved.optimizerCRC32 = try crc32(ofFile: stateFolder + "/optimizer.safetensors")
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try ModelIO.writeAtomically(try encoder.encode(saved), to: stateFolder + "/trainer_state.json")
    }

    /// Writes a complete model checkpoint (full fine-tuning) of `trainer` into `folder`.
    public static func save(_ trainer: Trainer, to folder: String, format: ExportFormat, config: GPT2Config,
                            dropout: Double?, tokenizerFiles: [String], generationConfigPath: String?) throws {
        try save(trainer, to: folder, output: .model(format: format, config: config, tokenizerFiles: tokenizerFiles,
                                                     generationConfigPath: generationConfigPath),
                 state: SavedState(options: trainer.options, progress: trainer.progress, totalSteps: trainer.totalSteps,
                                   dropout: dropout, exportFormat: format))
    }

    /// Writes `run/checkpoint-<step>/` of a full fine-tuning run (see `saveCheckpoint(_:run:output:state:)`).
    @discardableResult
    public static func saveCheckpoint(_ trainer: Trainer, run: String, format: ExportFormat, config: GPT2Config,
                                      dropout: Double?, tokenizerFiles: [String], generationConfigPath: String?) throws -> String {
        try saveCheckpoint(trainer, run: run, output: .model(format: format, config: config, tokenizerFiles: tokenizerFiles,
                                                             generationConfigPath: generationConfigPath),
                           state: SavedState(options: trainer.options, progress: trainer.progress, totalSteps: trainer.totalSteps,
                                             dropout: dropout, exportFormat: format))
    }

    /// Writes an intermediate checkpoint as `run/checkpoint-<step>/`, built in a temporary folder and renamed
    /// into place so a crash never leaves a half-written checkpoint. An existing `checkpoint-<step>/` is
    /// replaced only once the new one is complete (an atomic exchange of the two folders where the file
    /// system allows it; else the old one is moved aside first and restored by `removeLeftovers` if the
    /// process dies in between).
    @discardableResult
    public static func saveCheckpoint(_ trainer: Trainer, run: String, output: Output, state: SavedState) throws -> String {
        let fm = FileManager.default
        let name = "checkpoint-\(trainer.progress.step)"
        let final = run + "/" + name
        let temporary = run + "/." + name + partialSuffix
        try? fm.removeItem(atPath: temporary)
        try save(trainer, to: temporary, output: output, state: state)
        try replaceFolder(final, with: temporary, aside: run + "/." + name + replacedSuffix)
        return final
    }

    static let partialSuffix = ".partial"
    static let replacedSuffix = ".replaced"

    /// Puts the complete folder `source` at `target`, replacing what is there only after `source` is complete.
    static func replaceFolder(_ target: String, with source: String, aside: String) throws {
        let fm = FileManager.default
        var st = stat()
        if lstat(target, &st) == 0 {
            if exchangePaths(source, target) {
                try? fm.removeItem(atPath: source)  // now the old folder
                return
            }
            try? fm.removeItem(atPath: aside)
            guard rename(target, aside) == 0 else {
                throw ModelLoadError.cannotWrite(path: target, reason: "cannot move the old folder aside: " + String(cString: strerror(errno)))
            }
        }
        guard rename(source, target) == 0 else {
            let reason = String(cString: strerror(errno))
            _ = rename(aside, target)
            throw ModelLoadError.cannotWrite(path: target, reason: reason)
        }
        try? fm.removeItem(atPath: aside)
    }

    /// Atomically swaps two paths (Linux `renameat2(RENAME_EXCHANGE)`); false where unsupported.
    static func exchangePaths(_ a: String, _ b: String) -> Bool {
        typealias RenameAt2 = @convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32
        #if os(Linux)
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "renameat2") else { return false }
        let renameat2 = unsafeBitCast(symbol, to: RenameAt2.self)
        let exchange: UInt32 = 1 << 1  // RENAME_EXCHANGE
        return renameat2(AT_FDCWD, a, AT_FDCWD, b, exchange) == 0
        #else
        return false
        #endif
    }

    /// Removes what an interrupted process left in the run folder `run`: temporary files of atomic writes (in the
    /// run, its `trainer_state/` and every `checkpoint-N/`), half-built `.checkpoint-N.partial/` folders, and
    /// restores a `checkpoint-N/` that was moved aside and not yet replaced. Call only while holding the run's
    /// `RunFolderLock`. Returns the paths removed.
    @discardableResult
    public static func removeLeftovers(run: String) -> [String] {
        let fm = FileManager.default
        var removed: [String] = []
        let names = (try? fm.contentsOfDirectory(atPath: run)) ?? []
        var folders = [run, run + "/" + stateFolderName]
        for name in names {
            let path = run + "/" + name
            if name.hasPrefix(".checkpoint-"), name.hasSuffix(replacedSuffix) {
                let original = run + "/" + String(name.dropFirst().dropLast(replacedSuffix.count))
                if !fm.fileExists(atPath: original), rename(path, original) == 0 { folders.append(original); continue }
                if (try? fm.removeItem(atPath: path)) != nil { removed.append(path) }
            } else if name.hasPrefix(".checkpoint-"), name.hasSuffix(partialSuffix) {
                if (try? fm.removeItem(atPath: path)) != nil { removed.append(path) }
            } else if name.hasPrefix("checkpoint-") {
                folders += [path, path + "/" + stateFolderName]
            }
        }
        for folder in folders {
            for name in (try? fm.contentsOfDirectory(atPath: folder)) ?? [] where AtomicFileWriter.isTemporaryName(name) {
                let path = folder + "/" + name
                var st = stat()
                guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { continue }
                if unlink(path) == 0 { removed.append(path) }
            }
        }
        return removed
    }

    /// The checkpoint folder to resume from: the newest complete save among `path` itself (when it holds
    /// `trainer_state/`) and its `checkpoint-N/` folders. A save whose files do not match its `trainer_state.json`
    /// (the process died while writing it) is passed over for the next newest; when every save is torn, the
    /// newest one's error is thrown.
    public static func resumableFolder(_ path: String) throws -> String {
        let fm = FileManager.default
        var candidates: [(step: Int, folder: String)] = []
        if let saved = try? readState(folder: path) { candidates.append((saved.progress.step, path)) }
        for name in (try? fm.contentsOfDirectory(atPath: path)) ?? [] where name.hasPrefix("checkpoint-") {
            if let n = Int(name.dropFirst("checkpoint-".count)),
               fm.fileExists(atPath: path + "/" + name + "/" + stateFolderName + "/trainer_state.json") {
                candidates.append((n, path + "/" + name))
            }
        }
        var firstError: Error?
        for candidate in candidates.sorted(by: { $0.step > $1.step }) {
            do {
                try verifyFiles(folder: candidate.folder, state: try readState(folder: candidate.folder))
                return candidate.folder
            } catch {
                if firstError == nil { firstError = error }
            }
        }
        throw firstError ?? TrainingRunError.nothingToResume(path: path)
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
        let state: SavedState
        do { state = try JSONDecoder().decode(SavedState.self, from: data) } catch {
            throw TrainingRunError.invalidState(path: path, reason: "\(error)")
        }
        try state.validate(path: path)
        return state
    }

    /// Reads the optimizer state of a checkpoint folder.
    public static func readOptimizerState(folder: String) throws -> StateDict {
        try SafetensorsReader.read(path: folder + "/" + stateFolderName + "/optimizer.safetensors")
    }

    /// Checks that the weights and optimizer files of `folder` are the ones its `trainer_state.json` was saved
    /// with (states written before the checksums existed pass).
    public static func verifyFiles(folder: String, state: SavedState) throws {
        if let expected = state.weightsCRC32, let name = state.weightsFileName {
            let path = folder + "/" + name
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

/// Why a run could not be set up or resumed, or why it stopped before its end.
public enum TrainingRunError: Error, Sendable, CustomStringConvertible, Equatable {
    /// `--resume` names a folder with no `trainer_state/` and no complete `checkpoint-N/`.
    case nothingToResume(path: String)
    /// `trainer_state.json` (or the saved adapter config) cannot be read or describes no possible run.
    case invalidState(path: String, reason: String)
    /// A saved file's CRC-32 differs from the one in `trainer_state.json`: a save was interrupted between files.
    case tornSave(path: String)
    /// Another process holds the run folder's lock (`RunFolderLock`).
    case folderInUse(path: String)
    /// A new run's output folder already holds files and `overwrite` is not set.
    case folderNotEmpty(path: String)
    /// Settings that cannot be honoured together (no model, `--format` with LoRA, …); the message says which.
    case invalidSetting(String)
    /// The run's `shouldStop` asked it to stop after `step` steps. `resumeFrom` is the newest complete save to
    /// continue from (a `checkpoint-N/` of this run, or the folder it resumed from); nil when there is none.
    case cancelled(step: Int, resumeFrom: String?)

    /// The message `gpt2kit` prints, with what to do about it.
    public var description: String {
        switch self {
        case let .nothingToResume(p): return "\(p): no trainer_state/ and no checkpoint-N/ folder to resume from"
        case let .invalidState(p, r): return "\(p): unreadable trainer state: \(r)"
        case let .folderNotEmpty(p):
            return "\(p): the folder is not empty (an earlier run?); continue it with --resume, or start over with --overwrite"
        case let .invalidSetting(m): return m
        case let .folderInUse(p): return "\(p): another gpt2kit process is writing into this folder (it is locked); wait for it or choose another folder"
        case let .cancelled(step, resumeFrom):
            return "stopped at step \(step) on request; " + (resumeFrom.map { "the newest save to resume from is \($0)" } ?? "nothing saved to resume from")
        case let .tornSave(p):
            return "\(p): does not match trainer_state.json (a save was interrupted); resume from the newest checkpoint-N/ instead"
        }
    }
}

/// An exclusive advisory lock on a run folder (`flock` on the folder itself), held while a command writes
/// into it. A second process that asks for it is refused at once; the kernel releases it when the holder
/// exits, however it exits, so a crash never leaves the folder locked.
public final class RunFolderLock {
    /// The locked folder.
    public let folder: String
    private let descriptor: Int32

    /// Creates `folder` if needed and locks it, or throws `TrainingRunError.folderInUse`.
    public init(folder: String) throws {
        do { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) } catch {
            throw ModelLoadError.cannotWrite(path: folder, reason: error.localizedDescription)
        }
        let fd = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw ModelLoadError.cannotWrite(path: folder, reason: String(cString: strerror(errno))) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let busy = errno == EWOULDBLOCK
            let reason = String(cString: strerror(errno))
            close(fd)
            if busy { throw TrainingRunError.folderInUse(path: folder) }
            throw ModelLoadError.cannotWrite(path: folder, reason: "cannot lock: " + reason)
        }
        self.folder = folder
        self.descriptor = fd
    }

    deinit { close(descriptor) }
}
