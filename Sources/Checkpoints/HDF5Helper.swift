import CPosix
import Foundation
import Tensors

/// The helper process that runs libhdf5 for `KerasHDF5` (the `gpt2kit-hdf5` executable), and the protocol
/// between the two.
///
/// libhdf5 is not safe on hostile files: a single changed byte can make it crash (SIGSEGV reading a
/// variable-length string) or loop forever, and a full disk can crash it after reporting the error. Run in
/// a child process with a wall-clock and a memory limit, such a failure becomes an `HDF5Error`.
///
/// - Reading: the parent runs `gpt2kit-hdf5 read [LIMITS] -- PATH` with descriptor 3 an empty anonymous
///   file. The helper maps it and reads PATH with `readWeightFileInProcess` straight into it, each dataset at
///   the next 64-byte boundary, so the weights exist once, not in the helper's heap and again in the file. It
///   then appends a safetensors JSON header and the header's length as a little-endian `UInt64` (safetensors
///   framed data first, since the header is known only at the end). `__metadata__` holds only
///   `gpt2kit.hdf5`: the layer structure and the root attributes as JSON; alignment gaps are `U8` filler
///   entries whose names start with NUL, which no HDF5 name holds. The parent maps the file and checks it with
///   `SafetensorsReader` (entries tile the data exactly) and `weightFile(decoding:)`: our own hardened code,
///   not libhdf5, decides what the parent accepts.
/// - Writing: the parent writes the weights to descriptor 3 as a plain safetensors stream (header first, same
///   metadata) and runs
///   `gpt2kit-hdf5 write [LIMITS] -- PATH TEMPORARY`. The helper checks them the same way and writes
///   TEMPORARY (created exclusively) with libhdf5; the parent syncs it and renames it over PATH, or removes
///   it when anything failed.
/// - LIMITS: `--memory-limit BYTES` (RLIMIT_AS) and `--file-size-limit BYTES` (RLIMIT_FSIZE, for tests
///   that need a full disk); the helper sets them, and a zero core-dump size, before touching the file.
/// - The helper exits 0 on success; on an `HDF5Error` it prints one error record (`errorRecord(_:)`) and
///   exits 1; 2 is a usage error. Any other status, a signal or the wall-clock limit is a failure of
///   libhdf5 or the helper and becomes `crashed`, `timedOut` or `helperFailed`.
package enum HDF5Helper {
    /// The helper's executable name.
    package static let executableName = "gpt2kit-hdf5"
    /// Names the helper executable, overriding the search next to the running executable and on PATH.
    package static let environmentVariable = "GPT2KIT_HDF5_HELPER"
    /// The descriptor the weights travel through, in the helper.
    package static let channelDescriptor: Int32 = 3
    /// The `__metadata__` key holding the structure.
    static let structureKey = "gpt2kit.hdf5"
    package static let errorExitStatus: Int32 = 1
    package static let usageExitStatus: Int32 = 2
    /// Where error messages name the safetensors stream between the processes.
    static let channelName = "helper channel"

    // MARK: parent side

    /// Reads `path` through the helper; see `KerasHDF5.readWeightFile(path:options:)`.
    static func read(path: String, options: KerasHDF5.IsolationOptions) throws(HDF5Error) -> KerasHDF5.WeightFile {
        let fileSize = try KerasHDF5.regularFileSize(path)
        let helper = try locate(options.helperPath, for: path)
        let channel = try anonymousFile(for: path, operation: .reading)
        defer { close(channel) }
        let outcome = try run(helper, command: "read", operands: [path], channel: channel, byteCount: fileSize,
                              options: options, path: path, operation: .reading)
        try check(outcome, options: options, byteCount: fileSize, path: path, operation: .reading)
        guard let storage = ByteStorage.mapFile(descriptor: channel, prefault: true) else {
            throw .helperFailed(path: path, operation: .reading, detail: "cannot map the \(channelName): " + lastError())
        }
        let dict: StateDict
        do { dict = try SafetensorsReader.read(mappedTrailingHeader: storage, path: channelName) } catch {
            throw .helperFailed(path: path, operation: .reading, detail: error.description)
        }
        // The reader bounds unfiltered data by the file size and deflated data by 1100 times it.
        let (limit, overflow) = fileSize.multipliedReportingOverflow(by: 1101)
        do {
            return try weightFile(decoding: try withoutFillers(dict), maximumByteCount: overflow ? Int.max : limit)
        } catch {
            throw .helperFailed(path: path, operation: .reading, detail: "\(channelName): \(error.reason)")
        }
    }

    /// Writes `file` to `temporary` through the helper; errors name `path`, the file it will be renamed to.
    static func write(_ file: KerasHDF5.WeightFile, temporary: String, path: String,
                      options: KerasHDF5.IsolationOptions) throws(HDF5Error) {
        let helper = try locate(options.helperPath, for: path)
        let channel = try anonymousFile(for: path, operation: .writing)
        defer { close(channel) }
        let dict = stateDict(encoding: file)
        do { try SafetensorsWriter.write(dict, metadata: dict.metadata, toDescriptor: channel) } catch {
            throw .writeFailed(path: path, object: "/", detail: "\(channelName): \(error.reason)")
        }
        let byteCount = dict.totalByteCount
        let outcome = try run(helper, command: "write", operands: [path, temporary], channel: channel, byteCount: byteCount,
                              options: options, path: path, operation: .writing)
        try check(outcome, options: options, byteCount: byteCount, path: path, operation: .writing)
    }

    /// The helper to run: `configured`, else `$GPT2KIT_HDF5_HELPER`, else `gpt2kit-hdf5` next to the running
    /// executable (which covers `.build/debug/gpt2kit` and the test runner), else on PATH.
    static func locate(_ configured: String?, for path: String) throws(HDF5Error) -> String {
        let howToBuild = "build it with `swift build --product \(executableName)`, or set \(environmentVariable) to its path"
        if let configured {
            guard isExecutableFile(configured) else {
                throw .helperUnavailable(path: path, reason: "'\(configured)' is not an executable file")
            }
            return configured
        }
        if let variable = getenv(environmentVariable).map({ String(cString: $0) }), !variable.isEmpty {
            guard isExecutableFile(variable) else {
                throw .helperUnavailable(path: path, reason: "\(environmentVariable)='\(variable)' is not an executable file")
            }
            return variable
        }
        let executable = currentExecutable()
        var candidates: [String] = []
        if let executable {
            candidates.append((executable as NSString).deletingLastPathComponent + "/" + executableName)
        }
        let searchPath = getenv("PATH").map { String(cString: $0) } ?? ""
        for directory in searchPath.split(separator: ":") where directory.hasPrefix("/") {
            candidates.append(directory + "/" + executableName)
        }
        if let found = candidates.first(where: isExecutableFile) { return found }
        let beside = executable.map { "next to '\($0)'" } ?? "next to the running executable"
        throw .helperUnavailable(path: path, reason: "'\(executableName)' is neither \(beside) nor on PATH; \(howToBuild)")
    }

    private static func isExecutableFile(_ candidate: String) -> Bool {
        var info = stat()
        return stat(candidate, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG && access(candidate, X_OK) == 0
    }

    private static func currentExecutable() -> String? {
        #if os(Linux)
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard count > 0 else { return nil }
        return String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        #else
        return Bundle.main.executablePath
        #endif
    }

    private static func anonymousFile(for path: String, operation: HDF5Error.Operation) throws(HDF5Error) -> Int32 {
        let descriptor = gpt2kit_anonymous_file(executableName, FileManager.default.temporaryDirectory.path)
        guard descriptor >= 0 else {
            throw .helperFailed(path: path, operation: operation, detail: "cannot create the \(channelName): " + lastError())
        }
        return descriptor
    }

    private static func run(_ helper: String, command: String, operands: [String], channel: Int32, byteCount: Int,
                            options: KerasHDF5.IsolationOptions, path: String,
                            operation: HDF5Error.Operation) throws(HDF5Error) -> HelperProcess.Outcome {
        var arguments = [command, "--memory-limit", String(options.memoryLimit(forByteCount: byteCount))]
        if let limit = options.fileSizeLimit { arguments += ["--file-size-limit", String(limit)] }
        let process = HelperProcess(executable: helper, arguments: arguments + ["--"] + operands, sharedDescriptor: channel,
                                    timeout: options.timeoutSeconds(forByteCount: byteCount))
        do { return try process.run() } catch {
            throw .helperUnavailable(path: path, reason: error.reason)
        }
    }

    /// Turns how the helper ended into success or the error it stands for.
    private static func check(_ outcome: HelperProcess.Outcome, options: KerasHDF5.IsolationOptions, byteCount: Int,
                              path: String, operation: HDF5Error.Operation) throws(HDF5Error) {
        switch outcome.termination {
        case .exited(0):
            return
        case .exited(errorExitStatus):
            throw error(fromRecord: outcome.standardOutput, path: path, operation: operation)
        case let .exited(status):
            throw .helperFailed(path: path, operation: operation, detail: "exit status \(status)" + excerpt(outcome.standardError))
        case let .signaled(signal):
            throw .crashed(path: path, operation: operation, signal: signal)
        case .timedOut:
            throw .timedOut(path: path, operation: operation, seconds: options.timeoutSeconds(forByteCount: byteCount))
        }
    }

    /// The end of the helper's standard error as one printable line, for messages.
    private static func excerpt(_ bytes: [UInt8]) -> String {
        let text = String(decoding: bytes.suffix(400), as: UTF8.self)
            .unicodeScalars.map { $0.properties.generalCategory == .control ? " " : String($0) }.joined()
            .trimmingCharacters(in: .whitespaces)
        return text.isEmpty ? "" : ": " + text
    }

    private static func lastError() -> String { String(cString: strerror(errno)).lowercased() }

    // MARK: helper side

    /// Address space the helper needs besides the weights: the Swift runtime, Foundation and libhdf5 with its
    /// caches (measured: reading GPT-2 124M needs the file's 475 MiB plus under 110 MiB).
    package static let memoryReserve = 256 << 20

    /// Reads `path` with libhdf5 straight into the file open as `descriptor`, then appends the safetensors
    /// header and its length there (the protocol's data-first framing). With a `memoryLimit` (the helper's
    /// RLIMIT_AS), weights that would not fit under it are refused before they are allocated
    /// (`memoryLimitExceeded`), rather than ending in an allocation failure.
    package static func serveRead(path: String, to descriptor: Int32, memoryLimit: Int?) throws(HDF5Error) {
        let fileSize = try KerasHDF5.regularFileSize(path)
        let budget = memoryLimit.map { max($0 - memoryReserve, 0) }
        // Room for the weights: the budget, else what the reader's own bounds allow (sparse until written).
        let (bound, overflow) = fileSize.multipliedReportingOverflow(by: 1101)
        let capacity = budget ?? (overflow ? 1 << 40 : min(bound, 1 << 40))
        func failure(_ what: String) -> HDF5Error {
            .readFailed(path: path, object: "/", detail: "\(channelName): \(what): " + lastError())
        }
        guard ftruncate(descriptor, off_t(capacity)) == 0 else { throw failure("cannot size") }
        guard let region = ByteStorage.mapWritable(descriptor: descriptor, length: capacity) else { throw failure("cannot map") }
        // Each dataset goes at the next 64-byte boundary (as heap storage would be aligned).
        var end = 0
        let file = try KerasHDF5.readWeightFileInProcess(path: path, byteBudget: budget) { byteCount, object throws(HDF5Error) in
            let start = byteCount == 0 ? end : (end + 63) & ~63
            guard start <= capacity - byteCount else {
                throw .memoryLimitExceeded(path: path, dataset: object, totalBytes: start + byteCount, budget: capacity)
            }
            end = start + byteCount
            return (region, start)
        }
        var header = Array(channelHeader(file).utf8)
        header.appendLittleEndian64(header.count)
        guard ftruncate(descriptor, off_t(end + header.count)) == 0 else { throw failure("cannot size") }
        var written = 0
        while written < header.count {
            let count = header[written...].withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, off_t(end + written)) }
            if count < 0 {
                if errno == EINTR { continue }
                throw failure("cannot write")
            }
            written += count
        }
    }

    /// The JSON header for the weights of `file`, which sit in the channel at their tensors' byte offsets:
    /// every weight, then a filler entry (`U8`, named NUL + a number: no HDF5 name holds a NUL) for each
    /// alignment gap, so that the entries tile the data section as `SafetensorsReader` requires.
    static func channelHeader(_ file: KerasHDF5.WeightFile) -> String {
        var entries: [(name: String, dtype: DType, shape: [Int], range: Range<Int>)] = []
        for weight in file.layers.flatMap(\.weights) + file.topLevelWeights {
            let tensor = weight.tensor
            entries.append((weight.name, tensor.dtype, tensor.shape.dims, tensor.byteOffset ..< tensor.byteOffset + tensor.byteCount))
        }
        var end = 0
        for entry in entries.sorted(by: { $0.range.lowerBound < $1.range.lowerBound }) {
            if entry.range.lowerBound > end {
                let gap = end ..< entry.range.lowerBound
                entries.append(("\u{0}\(entries.count)", .u8, [gap.count], gap))
            }
            end = max(end, entry.range.upperBound)
        }
        var json = "{\"__metadata__\":{" + SafetensorsWriter.jsonString(structureKey) + ":"
            + SafetensorsWriter.jsonString(structureJSON(file)) + "}"
        for entry in entries {
            json += "," + SafetensorsWriter.jsonString(entry.name) + ":{\"dtype\":\"\(entry.dtype.rawValue)\",\"shape\":["
                + entry.shape.map(String.init).joined(separator: ",")
                + "],\"data_offsets\":[\(entry.range.lowerBound),\(entry.range.upperBound)]}"
        }
        return json + "}"
    }

    /// The weights of a data-first channel: the filler entries of `channelHeader(_:)` dropped (each must be
    /// a `U8` vector), the rest as they are.
    static func withoutFillers(_ dict: StateDict) throws(ChannelError) -> StateDict {
        var result = StateDict()
        result.metadata = dict.metadata
        for (name, tensor) in dict {
            if name.utf8.first == 0 {
                guard tensor.dtype == .u8, tensor.shape.rank == 1 else {
                    throw ChannelError(reason: "filler entry is not a U8 vector")
                }
                continue
            }
            result[name] = tensor
        }
        return result
    }

    /// Reads weights from the protocol's stream on `descriptor`, checks them, and writes them with libhdf5 to
    /// `temporary`, which must not exist; errors name `path`.
    package static func serveWrite(path: String, temporary: String, from descriptor: Int32) throws(HDF5Error) {
        guard let storage = ByteStorage.mapFile(descriptor: descriptor, prefault: true) else {
            throw .helperFailed(path: path, operation: .writing, detail: "cannot map the \(channelName): " + lastError())
        }
        let file: KerasHDF5.WeightFile
        do {
            let dict = try SafetensorsReader.read(mapped: storage, path: channelName)
            file = try weightFile(decoding: dict, maximumByteCount: storage.byteCount)
        } catch let error as SafetensorsError {
            throw .helperFailed(path: path, operation: .writing, detail: error.description)
        } catch let error as ChannelError {
            throw .helperFailed(path: path, operation: .writing, detail: "\(channelName): \(error.reason)")
        } catch {
            throw .helperFailed(path: path, operation: .writing, detail: "\(error)")
        }
        try KerasHDF5.writeInProcess(file, temporary: temporary, path: path)
    }

    // MARK: the weights on the channel

    /// Why the weights on the channel were refused.
    struct ChannelError: Error { var reason: String }

    /// Every weight under its name, and `gpt2kit.hdf5` = `structureJSON(file)` as the only metadata.
    static func stateDict(encoding file: KerasHDF5.WeightFile) -> StateDict {
        var dict = StateDict()
        for weight in file.layers.flatMap(\.weights) + file.topLevelWeights { dict[weight.name] = weight.tensor }
        dict.metadata = [structureKey: structureJSON(file)]
        return dict
    }

    /// The layer structure and root attributes of `file`: `{"layers": [{"name": …, "weights": […]}, …],
    /// "top": […], "attributes": {…}}`.
    static func structureJSON(_ file: KerasHDF5.WeightFile) -> String {
        func names(_ weights: [KerasHDF5.Weight]) -> String {
            "[" + weights.map { SafetensorsWriter.jsonString($0.name) }.joined(separator: ",") + "]"
        }
        var json = "{\"layers\":["
        json += file.layers.map { "{\"name\":" + SafetensorsWriter.jsonString($0.name) + ",\"weights\":" + names($0.weights) + "}" }
            .joined(separator: ",")
        json += "],\"top\":" + names(file.topLevelWeights) + ",\"attributes\":{"
        json += file.attributes.sorted { $0.key < $1.key }
            .map { SafetensorsWriter.jsonString($0.key) + ":" + SafetensorsWriter.jsonString($0.value) }.joined(separator: ",")
        return json + "}}"
    }

    /// The weight file `dict` (from `SafetensorsReader`) carries, after checking that the structure is well
    /// formed and accounts for every tensor exactly once, that names are non-empty and unique, dtypes F16, F32
    /// or F64, ranks at most 32, and the tensors together at most `maximumByteCount` bytes.
    static func weightFile(decoding dict: StateDict, maximumByteCount: Int) throws(ChannelError) -> KerasHDF5.WeightFile {
        guard dict.metadata.count == 1, let text = dict.metadata[structureKey] else {
            throw ChannelError(reason: "metadata is not exactly the '\(structureKey)' structure")
        }
        let parsed = Array(text.utf8).withUnsafeBytes { bytes in
            Result { () throws(HeaderJSON.ParseError) in try HeaderJSON.parse(bytes) }
        }
        let root: HeaderJSON
        switch parsed {
        case let .success(value): root = value
        case let .failure(error): throw ChannelError(reason: "structure is not valid JSON (\(error.reason) at byte \(error.offset))")
        }
        guard case let .object(members) = root, members.map(\.key) == ["layers", "top", "attributes"],
              case let .array(layerValues) = members[0].value, case let .array(topValues) = members[1].value,
              case let .object(attributeMembers) = members[2].value else {
            throw ChannelError(reason: "structure is not {\"layers\": [...], \"top\": [...], \"attributes\": {...}}")
        }
        var seen = Set<String>()
        var totalBytes = 0
        func weights(_ values: [HeaderJSON], in group: String) throws(ChannelError) -> [KerasHDF5.Weight] {
            var result: [KerasHDF5.Weight] = []
            for value in values {
                guard case let .string(name) = value, !name.isEmpty, !name.utf8.contains(0) else {
                    throw ChannelError(reason: "layer '\(group)': a weight name is not a non-empty string")
                }
                guard seen.insert(name).inserted else { throw ChannelError(reason: "weight '\(name)' appears twice") }
                guard let tensor = dict[name] else { throw ChannelError(reason: "weight '\(name)' has no tensor") }
                guard [.f16, .f32, .f64].contains(tensor.dtype) else {
                    throw ChannelError(reason: "weight '\(name)': dtype \(tensor.dtype.rawValue) is not F16, F32 or F64")
                }
                guard tensor.shape.rank <= 32 else { throw ChannelError(reason: "weight '\(name)': rank \(tensor.shape.rank) over 32") }
                let (total, overflow) = totalBytes.addingReportingOverflow(tensor.byteCount)
                guard !overflow, total <= maximumByteCount else {
                    throw ChannelError(reason: "weights total more than \(maximumByteCount) bytes")
                }
                totalBytes = total
                result.append(KerasHDF5.Weight(name: name, tensor: tensor))
            }
            return result
        }
        var layers: [KerasHDF5.Layer] = []
        for value in layerValues {
            guard case let .object(fields) = value, fields.map(\.key) == ["name", "weights"],
                  case let .string(name) = fields[0].value, !name.isEmpty, !name.utf8.contains(0),
                  case let .array(weightValues) = fields[1].value else {
                throw ChannelError(reason: "a layer is not {\"name\": non-empty string, \"weights\": [...]}")
            }
            layers.append(KerasHDF5.Layer(name: name, weights: try weights(weightValues, in: name)))
        }
        let topLevel = try weights(topValues, in: KerasHDF5.topLevelGroupName)
        guard seen.count == dict.count else {
            throw ChannelError(reason: "\(dict.count - seen.count) tensors belong to no layer")
        }
        var attributes: [String: String] = [:]
        for member in attributeMembers {
            guard case let .string(value) = member.value, !member.key.isEmpty, !member.key.utf8.contains(0),
                  !value.utf8.contains(0), attributes.updateValue(value, forKey: member.key) == nil else {
                throw ChannelError(reason: "attribute '\(member.key)' is not a unique name with a string value")
            }
        }
        return KerasHDF5.WeightFile(layers: layers, topLevelWeights: topLevel, attributes: attributes)
    }

    // MARK: error records

    /// One `HDF5Error` as the JSON line the helper prints: `{"case": name, "fields": [strings]}`.
    package static func errorRecord(_ error: HDF5Error) -> String {
        let (name, fields) = wireFields(error)
        return "{\"case\":" + SafetensorsWriter.jsonString(name) + ",\"fields\":["
            + fields.map(SafetensorsWriter.jsonString).joined(separator: ",") + "]}"
    }

    private static func wireFields(_ error: HDF5Error) -> (String, [String]) {
        switch error {
        case let .cannotOpen(p, reason): return ("cannotOpen", [p, reason])
        case let .notHDF5(p): return ("notHDF5", [p])
        case let .missingAttribute(p, object, attribute): return ("missingAttribute", [p, object, attribute])
        case let .invalidAttribute(p, object, attribute, reason): return ("invalidAttribute", [p, object, attribute, reason])
        case let .missingGroup(p, group): return ("missingGroup", [p, group])
        case let .missingDataset(p, dataset): return ("missingDataset", [p, dataset])
        case let .unsupportedElementType(p, dataset, type): return ("unsupportedElementType", [p, dataset, type])
        case let .invalidShape(p, dataset, reason): return ("invalidShape", [p, dataset, reason])
        case let .unsupportedStorage(p, dataset, reason): return ("unsupportedStorage", [p, dataset, reason])
        case let .sizeExceedsFile(p, dataset, count, size): return ("sizeExceedsFile", [p, dataset, String(count), String(size)])
        case let .totalSizeExceedsFile(p, dataset, total, limit):
            return ("totalSizeExceedsFile", [p, dataset, String(total), String(limit)])
        case let .duplicateWeight(p, name): return ("duplicateWeight", [p, name])
        case let .readFailed(p, object, detail): return ("readFailed", [p, object, detail])
        case let .writeFailed(p, object, detail): return ("writeFailed", [p, object, detail])
        case let .unsupportedDType(p, weight, dtype): return ("unsupportedDType", [p, weight, dtype.rawValue])
        case let .invalidName(p, name, reason): return ("invalidName", [p, name, reason])
        case let .memoryLimitExceeded(p, dataset, total, budget):
            return ("memoryLimitExceeded", [p, dataset, String(total), String(budget)])
        case let .unsupportedLink(p, link, kind): return ("unsupportedLink", [p, link, kind])
        case let .crashed(p, operation, signal): return ("crashed", [p, operation.rawValue, String(signal)])
        case let .timedOut(p, operation, seconds): return ("timedOut", [p, operation.rawValue, String(seconds)])
        case let .helperUnavailable(p, reason): return ("helperUnavailable", [p, reason])
        case let .helperFailed(p, operation, detail): return ("helperFailed", [p, operation.rawValue, detail])
        }
    }

    /// The error a record stands for; a record that is malformed, or names another file, is `helperFailed`.
    static func error(fromRecord bytes: [UInt8], path: String, operation: HDF5Error.Operation) -> HDF5Error {
        let malformed = HDF5Error.helperFailed(path: path, operation: operation, detail: "malformed error record")
        let parsed = bytes.withUnsafeBytes { raw in Result { () throws(HeaderJSON.ParseError) in try HeaderJSON.parse(raw) } }
        guard case let .success(.object(members)) = parsed, members.map(\.key) == ["case", "fields"],
              case let .string(name) = members[0].value, case let .array(values) = members[1].value else { return malformed }
        var fields: [String] = []
        for value in values {
            guard case let .string(field) = value else { return malformed }
            fields.append(field)
        }
        guard let error = decodedError(name, fields) else { return malformed }
        guard error.path == path else {
            return .helperFailed(path: path, operation: operation, detail: "error record names another file")
        }
        return error
    }

    private static func decodedError(_ name: String, _ f: [String]) -> HDF5Error? {
        func count(_ n: Int) -> Bool { f.count == n }
        switch name {
        case "cannotOpen" where count(2): return .cannotOpen(path: f[0], reason: f[1])
        case "notHDF5" where count(1): return .notHDF5(path: f[0])
        case "missingAttribute" where count(3): return .missingAttribute(path: f[0], object: f[1], attribute: f[2])
        case "invalidAttribute" where count(4): return .invalidAttribute(path: f[0], object: f[1], attribute: f[2], reason: f[3])
        case "missingGroup" where count(2): return .missingGroup(path: f[0], group: f[1])
        case "missingDataset" where count(2): return .missingDataset(path: f[0], dataset: f[1])
        case "unsupportedElementType" where count(3): return .unsupportedElementType(path: f[0], dataset: f[1], type: f[2])
        case "invalidShape" where count(3): return .invalidShape(path: f[0], dataset: f[1], reason: f[2])
        case "unsupportedStorage" where count(3): return .unsupportedStorage(path: f[0], dataset: f[1], reason: f[2])
        case "sizeExceedsFile" where count(4):
            guard let byteCount = Int(f[2]), let fileSize = Int(f[3]) else { return nil }
            return .sizeExceedsFile(path: f[0], dataset: f[1], byteCount: byteCount, fileSize: fileSize)
        case "totalSizeExceedsFile" where count(4):
            guard let total = Int(f[2]), let limit = Int(f[3]) else { return nil }
            return .totalSizeExceedsFile(path: f[0], dataset: f[1], totalBytes: total, limit: limit)
        case "duplicateWeight" where count(2): return .duplicateWeight(path: f[0], name: f[1])
        case "readFailed" where count(3): return .readFailed(path: f[0], object: f[1], detail: f[2])
        case "writeFailed" where count(3): return .writeFailed(path: f[0], object: f[1], detail: f[2])
        case "unsupportedDType" where count(3):
            guard let dtype = DType(rawValue: f[2]) else { return nil }
            return .unsupportedDType(path: f[0], weight: f[1], dtype: dtype)
        case "invalidName" where count(3): return .invalidName(path: f[0], name: f[1], reason: f[2])
        case "memoryLimitExceeded" where count(4):
            guard let total = Int(f[2]), let budget = Int(f[3]) else { return nil }
            return .memoryLimitExceeded(path: f[0], dataset: f[1], totalBytes: total, budget: budget)
        case "unsupportedLink" where count(3): return .unsupportedLink(path: f[0], link: f[1], kind: f[2])
        case "crashed" where count(3):
            guard let operation = HDF5Error.Operation(rawValue: f[1]), let signal = Int32(f[2]) else { return nil }
            return .crashed(path: f[0], operation: operation, signal: signal)
        case "timedOut" where count(3):
            guard let operation = HDF5Error.Operation(rawValue: f[1]), let seconds = Double(f[2]) else { return nil }
            return .timedOut(path: f[0], operation: operation, seconds: seconds)
        case "helperUnavailable" where count(2): return .helperUnavailable(path: f[0], reason: f[1])
        case "helperFailed" where count(3):
            guard let operation = HDF5Error.Operation(rawValue: f[1]) else { return nil }
            return .helperFailed(path: f[0], operation: operation, detail: f[2])
        default: return nil
        }
    }
}
