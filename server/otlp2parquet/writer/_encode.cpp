/* Parquet encoding with a row group's columns written on several threads.
 *
 * pyarrow's `write_table` encodes one column after another on the calling thread. Arrow's C++ writer can write
 * a buffered row group's columns in parallel (`ArrowWriterProperties::set_use_threads`), but pyarrow does not
 * expose that setting. Encoding is over half of a flush, and on two CPUs a saturated sidecar's flush thread is
 * its limit, so this file builds the same writer as `write_table` with that one setting added.
 *
 * `parquet(stream, ...)` takes a table as an Arrow C stream (`Table.__arrow_c_stream__()`), the properties
 * `writer/files.py` chooses (zstd level, row group rows, which columns get a dictionary, statistics or another
 * encoding) and a thread count, and returns the file as bytes. It releases the GIL while it encodes. With
 * threads = 1 it writes what `pq.write_table` writes with the same settings, byte for byte (a test compares).
 *
 * The threads are this module's own pool, made on first use with that call's count and kept for the process:
 * Arrow warns that writers sharing a pool with other work that waits on it can deadlock; ours only run column
 * writes, whose callers are never pool threads.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <arrow/c/abi.h>
#include <arrow/c/bridge.h>
#include <arrow/io/memory.h>
#include <arrow/record_batch.h>
#include <arrow/util/thread_pool.h>
#include <parquet/arrow/writer.h>
#include <parquet/exception.h>
#include <parquet/properties.h>

namespace {

struct Options {
    int compression_level = 1;
    int64_t row_group_rows = 0;
    int threads = 1;
    std::vector<std::string> dictionary, statistics;
    std::vector<std::pair<std::string, parquet::Encoding::type>> encodings;
};

arrow::Result<arrow::internal::Executor*> pool(int threads) {
    static std::mutex mutex;
    static std::shared_ptr<arrow::internal::ThreadPool> made;  // kept for the process (MakeEternal)
    std::lock_guard<std::mutex> lock(mutex);
    if (!made) {
        ARROW_ASSIGN_OR_RAISE(made, arrow::internal::ThreadPool::MakeEternal(threads));
    }
    return made.get();
}

/* The settings pq.write_table passes to the same writer, plus the threads. */
arrow::Result<std::pair<std::shared_ptr<parquet::WriterProperties>, std::shared_ptr<parquet::ArrowWriterProperties>>>
properties(const Options &options) {
    parquet::WriterProperties::Builder builder;
    builder.version(parquet::ParquetVersion::PARQUET_2_6)
        ->data_page_version(parquet::ParquetDataPageVersion::V1)
        ->compression(arrow::Compression::ZSTD)
        ->compression_level(options.compression_level)
        ->max_row_group_length(options.row_group_rows)
        ->disable_dictionary()
        ->disable_statistics()
        ->disable_page_checksum()
        ->disable_write_page_index();
    for (const auto &column : options.dictionary) builder.enable_dictionary(column);
    for (const auto &column : options.statistics) builder.enable_statistics(column);
    for (const auto &[column, encoding] : options.encodings) builder.encoding(column, encoding);
    parquet::ArrowWriterProperties::Builder arrow_builder;
    arrow_builder.store_schema();
    if (options.threads > 1) {
        ARROW_ASSIGN_OR_RAISE(auto executor, pool(options.threads));
        arrow_builder.set_use_threads(true)->set_executor(executor);
    }
    return std::make_pair(builder.build(), arrow_builder.build());
}

/* Runs without the GIL. Buffered row groups (WriteRecordBatch) are the mode whose columns go to the threads. */
arrow::Result<std::shared_ptr<arrow::Buffer>> encode(const std::shared_ptr<arrow::Schema> &schema,
                                                     const arrow::RecordBatchVector &batches, const Options &options) {
    std::shared_ptr<parquet::WriterProperties> props;
    std::shared_ptr<parquet::ArrowWriterProperties> arrow_props;
    ARROW_ASSIGN_OR_RAISE(std::tie(props, arrow_props), properties(options));
    ARROW_ASSIGN_OR_RAISE(auto sink, arrow::io::BufferOutputStream::Create());
    ARROW_ASSIGN_OR_RAISE(auto writer, parquet::arrow::FileWriter::Open(*schema, arrow::default_memory_pool(), sink,
                                                                        props, arrow_props));
    for (const auto &batch : batches) {
        ARROW_RETURN_NOT_OK(writer->WriteRecordBatch(*batch));
    }
    ARROW_RETURN_NOT_OK(writer->Close());
    return sink->Finish();
}

bool strings(PyObject *sequence, const char *what, std::vector<std::string> &out) {
    PyObject *items = PySequence_Fast(sequence, what);
    if (items == nullptr) return false;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(items); i++) {
        const char *text = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(items, i));
        if (text == nullptr) {
            Py_DECREF(items);
            return false;
        }
        out.emplace_back(text);
    }
    Py_DECREF(items);
    return true;
}

bool encoding_of(const char *name, parquet::Encoding::type &out) {
    static const std::pair<const char *, parquet::Encoding::type> known[] = {
        {"PLAIN", parquet::Encoding::PLAIN},
        {"DELTA_BINARY_PACKED", parquet::Encoding::DELTA_BINARY_PACKED},
        {"DELTA_LENGTH_BYTE_ARRAY", parquet::Encoding::DELTA_LENGTH_BYTE_ARRAY},
        {"DELTA_BYTE_ARRAY", parquet::Encoding::DELTA_BYTE_ARRAY},
        {"BYTE_STREAM_SPLIT", parquet::Encoding::BYTE_STREAM_SPLIT},
    };
    for (const auto &[known_name, encoding] : known) {
        if (std::string(known_name) == name) {
            out = encoding;
            return true;
        }
    }
    PyErr_Format(PyExc_ValueError, "unknown Parquet column encoding %s", name);
    return false;
}

bool options_of(PyObject *dictionary, PyObject *statistics, PyObject *encodings, Options &options) {
    if (!strings(dictionary, "dictionary: a sequence of column paths", options.dictionary)) return false;
    if (!strings(statistics, "statistics: a sequence of column paths", options.statistics)) return false;
    if (!PyDict_Check(encodings)) {
        PyErr_SetString(PyExc_TypeError, "encodings: a dict of column path to encoding name");
        return false;
    }
    PyObject *key, *value;
    Py_ssize_t at = 0;
    while (PyDict_Next(encodings, &at, &key, &value)) {
        const char *column = PyUnicode_AsUTF8(key), *name = PyUnicode_AsUTF8(value);
        parquet::Encoding::type encoding;
        if (column == nullptr || name == nullptr || !encoding_of(name, encoding)) return false;
        options.encodings.emplace_back(column, encoding);
    }
    return true;
}

PyObject *parquet_bytes(PyObject *, PyObject *args, PyObject *kwargs) {
    static const char *keywords[] = {"stream", "compression_level", "row_group_rows", "dictionary", "statistics",
                                     "encodings", "threads", nullptr};
    PyObject *capsule, *dictionary, *statistics, *encodings;
    Options options;
    long long rows = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OiLOOO|i", const_cast<char **>(keywords), &capsule,
                                     &options.compression_level, &rows, &dictionary, &statistics, &encodings,
                                     &options.threads)) {
        return nullptr;
    }
    options.row_group_rows = rows;
    if (rows <= 0) {
        PyErr_SetString(PyExc_ValueError, "row_group_rows must be positive");
        return nullptr;
    }
    if (!options_of(dictionary, statistics, encodings, options)) return nullptr;
    auto *stream = static_cast<ArrowArrayStream *>(PyCapsule_GetPointer(capsule, "arrow_array_stream"));
    if (stream == nullptr) return nullptr;

    arrow::Result<std::shared_ptr<arrow::Buffer>> file;
    {
        // Importing moves the stream out of the capsule (whose destructor then finds it released).
        auto reader = arrow::ImportRecordBatchReader(stream);
        if (!reader.ok()) {
            file = reader.status();
        } else {
            // A table's exported stream is C++ only: reading it needs no GIL either.
            Py_BEGIN_ALLOW_THREADS
            try {
                auto batches = (*reader)->ToRecordBatches();
                file = batches.ok() ? encode((*reader)->schema(), *batches, options) : batches.status();
            } catch (const std::exception &error) {  // the Parquet writer throws ParquetException in places
                file = arrow::Status::Invalid(error.what());
            }
            Py_END_ALLOW_THREADS
        }
    }
    if (!file.ok()) {
        PyErr_Format(PyExc_ValueError, "Parquet encoding failed: %s", file.status().ToString().c_str());
        return nullptr;
    }
    const auto &buffer = *file;
    return PyBytes_FromStringAndSize(reinterpret_cast<const char *>(buffer->data()), buffer->size());
}

PyMethodDef methods[] = {
    {"parquet", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(parquet_bytes)),
     METH_VARARGS | METH_KEYWORDS,
     "parquet(stream, compression_level, row_group_rows, dictionary, statistics, encodings, threads=1) -> bytes"},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module = {PyModuleDef_HEAD_INIT, "_encode", nullptr, -1, methods, nullptr, nullptr, nullptr, nullptr};

}  // namespace

PyMODINIT_FUNC PyInit__encode(void) { return PyModule_Create(&module); }
