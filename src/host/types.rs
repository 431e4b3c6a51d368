//! The layouts of RediSearch's types that the library reads or writes,
//! written from the contract (CONTRACT §2, §6).
//!
//! Fields are visible to `crate::host` only, which reads them for the rest
//! of the library: nothing else builds these types, or reads their pointers.
//!
//! This file is also compiled into `build.rs`, which turns every size and
//! field offset below into a `_Static_assert` against the real C headers:
//! the C compiler rejects the build when they drift. Keep it free of
//! anything but `core` types.
use core::ffi::{c_char, c_int, c_long, c_uchar, c_ulong, c_void};

/// `MREndpoint` (`rmr/endpoint.h`). `isTls` exists from RediSearch master
/// 075d9f3 on; it sits in what was padding, so the other offsets agree in
/// both variants. build.rs sets `mrconn_endpoint_tls` when the host header
/// has it.
#[repr(C)]
pub struct MREndpoint {
    pub(super) host: *mut c_char,
    pub(super) port: c_int,
    #[cfg(mrconn_endpoint_tls)]
    pub(super) isTls: bool,
    pub(super) unixSock: *mut c_char,
    pub(super) password: *mut c_char,
}

/// `MRCommand` (`rmr/command.h`).
#[repr(C)]
pub struct MRCommand {
    pub(super) strs: *mut *mut c_char,
    pub(super) lens: *mut usize,
    pub(super) num: u32,
    pub(super) slotsInfoArgIndex: u32,
    pub(super) dispatchTimeArgIndex: u32,
    pub(super) targetShard: *mut c_char,
    pub(super) targetShardIdx: u16,
    pub(super) protocol: c_uchar,
    pub(super) forCursor: bool,
    pub(super) forProfiling: bool,
    pub(super) depleted: bool,
    /// `MRRootCommand`, a C enum.
    pub(super) rootCommand: c_int,
    /// An `sds`, owned by the command once set.
    pub(super) cmd: *mut c_char,
    pub(super) coordStartTime: u64,
}

/// `dictType` (`util/dict.h`).
#[repr(C)]
pub struct dictType {
    pub hashFunction: Option<unsafe extern "C" fn(key: *const c_void) -> u64>,
    pub keyDup:
        Option<unsafe extern "C" fn(privdata: *mut c_void, key: *const c_void) -> *mut c_void>,
    pub valDup:
        Option<unsafe extern "C" fn(privdata: *mut c_void, obj: *const c_void) -> *mut c_void>,
    pub keyCompare: Option<
        unsafe extern "C" fn(privdata: *mut c_void, k1: *const c_void, k2: *const c_void) -> c_int,
    >,
    pub keyDestructor: Option<unsafe extern "C" fn(privdata: *mut c_void, key: *mut c_void)>,
    pub valDestructor: Option<unsafe extern "C" fn(privdata: *mut c_void, obj: *mut c_void)>,
}

/// `dictEntry`; the value union is read only as its `void *val` member.
#[repr(C)]
pub struct dictEntry {
    pub(super) key: *mut c_void,
    pub(super) v: *mut c_void,
    pub(super) next: *mut dictEntry,
}

/// `dictht`.
#[repr(C)]
pub struct dictht {
    pub(super) table: *mut *mut dictEntry,
    pub(super) size: c_ulong,
    pub(super) sizemask: c_ulong,
    pub(super) used: c_ulong,
}

/// `dict`.
#[repr(C)]
pub struct dict {
    pub(super) type_: *mut dictType,
    pub(super) privdata: *mut c_void,
    pub(super) ht: [dictht; 2],
    pub(super) rehashidx: c_long,
    pub(super) pauserehash: i16,
}

/// `struct timeval` on LP64 Linux.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct timeval {
    pub(super) tv_sec: c_long,
    pub(super) tv_usec: c_long,
}

/// `SearchClusterConfig` (`coord/config.h`).
#[repr(C)]
pub struct SearchClusterConfig {
    /// `MRClusterType`, a C enum.
    pub(super) type_: c_int,
    pub(super) timeoutMS: c_int,
    pub(super) connPerShard: usize,
    pub(super) cursorReplyThreshold: usize,
    pub(super) coordinatorPoolSize: usize,
    pub(super) coordinatorIOThreads: usize,
    pub(super) topologyValidationTimeoutMS: usize,
    pub(super) connectTimeout: timeval,
}

/// `array_hdr_t` (`util/arr/arr.h`), the header in front of an array's data.
#[repr(C)]
pub struct array_hdr_t {
    pub(super) len: u32,
    pub(super) remain_cap: u16,
    pub(super) elem_sz: u16,
}

/// One C type's layout: its name, size, and fields as (C name, offset).
pub type Layout = (&'static str, usize, &'static [(&'static str, usize)]);

/// Every layout the library assumes, for build.rs. `type_` fields are named
/// `type` in C.
pub fn layouts() -> [Layout; 9] {
    use core::mem::{offset_of, size_of};
    macro_rules! fields {
        ($t:ty: $($f:ident => $c:literal),*) => {
            &[$(($c, offset_of!($t, $f))),*]
        };
    }
    [
        (
            "MREndpoint",
            size_of::<MREndpoint>(),
            fields!(MREndpoint: host => "host", port => "port", unixSock => "unixSock", password => "password"),
        ),
        (
            "MRCommand",
            size_of::<MRCommand>(),
            fields!(MRCommand: strs => "strs", lens => "lens", num => "num",
                slotsInfoArgIndex => "slotsInfoArgIndex", dispatchTimeArgIndex => "dispatchTimeArgIndex",
                targetShard => "targetShard", targetShardIdx => "targetShardIdx", protocol => "protocol",
                forCursor => "forCursor", forProfiling => "forProfiling", depleted => "depleted",
                rootCommand => "rootCommand", cmd => "cmd", coordStartTime => "coordStartTime"),
        ),
        (
            "dictType",
            size_of::<dictType>(),
            fields!(dictType: hashFunction => "hashFunction", keyDup => "keyDup", valDup => "valDup",
                keyCompare => "keyCompare", keyDestructor => "keyDestructor", valDestructor => "valDestructor"),
        ),
        (
            "dictEntry",
            size_of::<dictEntry>(),
            fields!(dictEntry: key => "key", v => "v", next => "next"),
        ),
        (
            "dictht",
            size_of::<dictht>(),
            fields!(dictht: table => "table", size => "size", sizemask => "sizemask", used => "used"),
        ),
        (
            "dict",
            size_of::<dict>(),
            fields!(dict: type_ => "type", privdata => "privdata", ht => "ht",
                rehashidx => "rehashidx", pauserehash => "pauserehash"),
        ),
        (
            "SearchClusterConfig",
            size_of::<SearchClusterConfig>(),
            fields!(SearchClusterConfig: type_ => "type", timeoutMS => "timeoutMS", connPerShard => "connPerShard",
                cursorReplyThreshold => "cursorReplyThreshold", coordinatorPoolSize => "coordinatorPoolSize",
                coordinatorIOThreads => "coordinatorIOThreads",
                topologyValidationTimeoutMS => "topologyValidationTimeoutMS", connectTimeout => "connectTimeout"),
        ),
        (
            "struct timeval",
            size_of::<timeval>(),
            fields!(timeval: tv_sec => "tv_sec", tv_usec => "tv_usec"),
        ),
        (
            "array_hdr_t",
            size_of::<array_hdr_t>(),
            fields!(array_hdr_t: len => "len", remain_cap => "remain_cap", elem_sz => "elem_sz"),
        ),
    ]
}
