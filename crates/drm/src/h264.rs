//! H.264 slice header lengths (ITU-T H.264 7.3.3), so that slice headers stay clear.

use crate::{DrmError, Result};
use reel_media::bits::BitReader;
use reel_media::h264::{nals, AvcConfig};

#[derive(Debug, Clone, Default)]
struct Sps {
    separate_colour_plane: bool,
    chroma_array_type: u32,
    log2_max_frame_num: u32,
    pic_order_cnt_type: u32,
    log2_max_poc_lsb: u32,
    delta_pic_order_always_zero: bool,
    frame_mbs_only: bool,
}

#[derive(Debug, Clone, Default)]
struct Pps {
    sps_id: u32,
    entropy_coding_mode: bool,
    bottom_field_pic_order_in_frame_present: bool,
    num_ref_idx_l0_default: u32,
    num_ref_idx_l1_default: u32,
    weighted_pred: bool,
    weighted_bipred_idc: u32,
    deblocking_filter_control_present: bool,
    redundant_pic_cnt_present: bool,
}

fn bad(problem: impl Into<String>) -> DrmError {
    DrmError::Sample {
        problem: format!("H.264: {}", problem.into()),
    }
}

fn media(e: reel_media::MediaError) -> DrmError {
    bad(e.to_string())
}

/// The RBSP of a NAL unit payload (emulation prevention bytes removed) and, for each RBSP
/// byte index where one was removed, that index: to map RBSP lengths back to NAL bytes.
fn rbsp(nal: &[u8], limit: usize) -> (Vec<u8>, Vec<usize>) {
    let mut out = Vec::with_capacity(nal.len().min(limit));
    let mut removed = Vec::new();
    let mut zeros = 0;
    for &b in nal.iter().take(limit) {
        if zeros >= 2 && b == 3 {
            removed.push(out.len());
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    (out, removed)
}

fn skip_scaling_list(r: &mut BitReader, size: usize) -> Result<()> {
    let (mut last, mut next) = (8i32, 8i32);
    for _ in 0..size {
        if next != 0 {
            let delta = r.se().map_err(media)?;
            next = (last + delta + 256) % 256;
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

fn parse_sps(nal: &[u8]) -> Result<(u32, Sps)> {
    let (data, _) = rbsp(nal.get(1..).unwrap_or_default(), usize::MAX);
    let mut r = BitReader::new(&data, "H.264 SPS");
    let profile = r.bits(8).map_err(media)?;
    r.bits(16).map_err(media)?; // constraint flags, level
    let id = r.ue().map_err(media)?;
    let mut sps = Sps {
        chroma_array_type: 1,
        ..Default::default()
    };
    if matches!(
        profile,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        let chroma_format_idc = r.ue().map_err(media)?;
        if chroma_format_idc == 3 {
            sps.separate_colour_plane = r.bit().map_err(media)?;
        }
        sps.chroma_array_type = if sps.separate_colour_plane {
            0
        } else {
            chroma_format_idc
        };
        r.ue().map_err(media)?; // bit depth luma
        r.ue().map_err(media)?; // bit depth chroma
        r.bit().map_err(media)?; // qpprime_y_zero_transform_bypass
        if r.bit().map_err(media)? {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bit().map_err(media)? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    sps.log2_max_frame_num = r.ue().map_err(media)? + 4;
    sps.pic_order_cnt_type = r.ue().map_err(media)?;
    match sps.pic_order_cnt_type {
        0 => sps.log2_max_poc_lsb = r.ue().map_err(media)? + 4,
        1 => {
            sps.delta_pic_order_always_zero = r.bit().map_err(media)?;
            r.se().map_err(media)?;
            r.se().map_err(media)?;
            let n = r.ue().map_err(media)?;
            for _ in 0..n {
                r.se().map_err(media)?;
            }
        }
        _ => {}
    }
    r.ue().map_err(media)?; // max_num_ref_frames
    r.bit().map_err(media)?; // gaps_in_frame_num_value_allowed
    r.ue().map_err(media)?; // width in MBs
    r.ue().map_err(media)?; // height in map units
    sps.frame_mbs_only = r.bit().map_err(media)?;
    if sps.log2_max_frame_num > 16 || sps.log2_max_poc_lsb > 16 {
        return Err(bad("SPS with out-of-range frame_num or POC lengths"));
    }
    Ok((id, sps))
}

fn parse_pps(nal: &[u8]) -> Result<(u32, Pps)> {
    let (data, _) = rbsp(nal.get(1..).unwrap_or_default(), usize::MAX);
    let mut r = BitReader::new(&data, "H.264 PPS");
    let id = r.ue().map_err(media)?;
    let mut pps = Pps {
        sps_id: r.ue().map_err(media)?,
        entropy_coding_mode: r.bit().map_err(media)?,
        bottom_field_pic_order_in_frame_present: r.bit().map_err(media)?,
        ..Default::default()
    };
    if r.ue().map_err(media)? > 0 {
        return Err(bad("slice groups (FMO) are not supported for encryption"));
    }
    pps.num_ref_idx_l0_default = r.ue().map_err(media)? + 1;
    pps.num_ref_idx_l1_default = r.ue().map_err(media)? + 1;
    pps.weighted_pred = r.bit().map_err(media)?;
    pps.weighted_bipred_idc = r.bits(2).map_err(media)?;
    r.se().map_err(media)?; // pic_init_qp
    r.se().map_err(media)?; // pic_init_qs
    r.se().map_err(media)?; // chroma_qp_index_offset
    pps.deblocking_filter_control_present = r.bit().map_err(media)?;
    r.bit().map_err(media)?; // constrained_intra_pred
    pps.redundant_pic_cnt_present = r.bit().map_err(media)?;
    Ok((id, pps))
}

/// Why a slice header could not be measured: the unescaped prefix was too short, or the
/// stream is bad.
enum Parse {
    Short,
    Bad(DrmError),
}

/// Knows the parameter sets of a stream and measures slice headers.
pub(crate) struct SliceHeaderParser {
    nal_length_size: u8,
    sps: Vec<(u32, Sps)>,
    pps: Vec<(u32, Pps)>,
}

impl SliceHeaderParser {
    pub(crate) fn new(config: &AvcConfig) -> Result<Self> {
        let mut p = Self {
            nal_length_size: config.nal_length_size,
            sps: Vec::new(),
            pps: Vec::new(),
        };
        for s in &config.sps {
            p.add_sps(s)?;
        }
        for s in &config.pps {
            p.add_pps(s)?;
        }
        Ok(p)
    }

    fn add_sps(&mut self, nal: &[u8]) -> Result<()> {
        let (id, sps) = parse_sps(nal)?;
        self.sps.retain(|s| s.0 != id);
        self.sps.push((id, sps));
        Ok(())
    }

    fn add_pps(&mut self, nal: &[u8]) -> Result<()> {
        let (id, pps) = parse_pps(nal)?;
        self.pps.retain(|s| s.0 != id);
        self.pps.push((id, pps));
        Ok(())
    }

    /// Calls `f(clear, protected)` for each NAL unit of a length-prefixed sample, in order.
    pub(crate) fn ranges(&mut self, sample: &[u8], mut f: impl FnMut(usize, usize)) -> Result<()> {
        for nal in nals(sample, self.nal_length_size).map_err(media)? {
            let body = &sample[nal.payload_start..nal.end];
            let total = nal.end - nal.start;
            match nal.nal_type {
                1 | 5 => {
                    let header = self.slice_header_len(body)?;
                    let clear = (nal.payload_start - nal.start) + header;
                    f(clear, total - clear);
                }
                7 => {
                    self.add_sps(body)?;
                    f(total, 0);
                }
                8 => {
                    self.add_pps(body)?;
                    f(total, 0);
                }
                _ => f(total, 0),
            }
        }
        Ok(())
    }

    /// Bytes of the NAL unit (from its header byte) up to the end of the slice header.
    fn slice_header_len(&self, nal: &[u8]) -> Result<usize> {
        // A slice header is a few dozen bytes: unescape only a prefix of the slice, longer
        // only when the header does not fit in it.
        for limit in [64, 1024, usize::MAX] {
            match self.slice_header_len_within(nal, limit) {
                Ok(n) => return Ok(n),
                Err(Parse::Short) if limit < nal.len() => continue,
                Err(Parse::Short) => return Err(bad("slice header runs past its NAL unit")),
                Err(Parse::Bad(e)) => return Err(e),
            }
        }
        unreachable!("the last limit covers the whole NAL unit")
    }

    fn slice_header_len_within(
        &self,
        nal: &[u8],
        limit: usize,
    ) -> std::result::Result<usize, Parse> {
        let nal_ref_idc = (nal[0] >> 5) & 3;
        let idr = nal[0] & 0x1f == 5;
        let (data, removed) = rbsp(&nal[1..], limit);
        let mut r = BitReader::new(&data, "H.264 slice header");
        let m = |e: reel_media::MediaError| match e {
            reel_media::MediaError::Truncated { .. } => Parse::Short,
            other => Parse::Bad(media(other)),
        };
        let bad = |p: String| Parse::Bad(bad(p));
        r.ue().map_err(m)?; // first_mb_in_slice
        let slice_type = r.ue().map_err(m)? % 5;
        let pps_id = r.ue().map_err(m)?;
        let pps = &self
            .pps
            .iter()
            .find(|p| p.0 == pps_id)
            .ok_or_else(|| bad(format!("slice refers to unknown PPS {pps_id}")))?
            .1;
        let sps = &self
            .sps
            .iter()
            .find(|s| s.0 == pps.sps_id)
            .ok_or_else(|| bad(format!("PPS refers to unknown SPS {}", pps.sps_id)))?
            .1;
        let (p, b, i, sp, si) = (
            slice_type == 0,
            slice_type == 1,
            slice_type == 2,
            slice_type == 3,
            slice_type == 4,
        );
        if sps.separate_colour_plane {
            r.bits(2).map_err(m)?;
        }
        r.bits(sps.log2_max_frame_num).map_err(m)?;
        let mut field_pic = false;
        if !sps.frame_mbs_only {
            field_pic = r.bit().map_err(m)?;
            if field_pic {
                r.bit().map_err(m)?;
            }
        }
        if idr {
            r.ue().map_err(m)?;
        }
        if sps.pic_order_cnt_type == 0 {
            r.bits(sps.log2_max_poc_lsb).map_err(m)?;
            if pps.bottom_field_pic_order_in_frame_present && !field_pic {
                r.se().map_err(m)?;
            }
        }
        if sps.pic_order_cnt_type == 1 && !sps.delta_pic_order_always_zero {
            r.se().map_err(m)?;
            if pps.bottom_field_pic_order_in_frame_present && !field_pic {
                r.se().map_err(m)?;
            }
        }
        if pps.redundant_pic_cnt_present {
            r.ue().map_err(m)?;
        }
        if b {
            r.bit().map_err(m)?; // direct_spatial_mv_pred
        }
        let (mut l0, mut l1) = (pps.num_ref_idx_l0_default, pps.num_ref_idx_l1_default);
        if (p || sp || b) && r.bit().map_err(m)? {
            l0 = r.ue().map_err(m)? + 1;
            if b {
                l1 = r.ue().map_err(m)? + 1;
            }
        }
        if l0 > 32 || l1 > 32 {
            return Err(bad("more than 32 reference indices".into()));
        }
        // ref_pic_list_modification()
        let lists = if b {
            2
        } else if !i && !si {
            1
        } else {
            0
        };
        for _ in 0..lists {
            if r.bit().map_err(m)? {
                for _ in 0..=64 {
                    let idc = r.ue().map_err(m)?;
                    match idc {
                        0..=2 => {
                            r.ue().map_err(m)?;
                        }
                        3 => break,
                        _ => return Err(bad(format!("modification_of_pic_nums_idc {idc}"))),
                    }
                }
            }
        }
        if (pps.weighted_pred && (p || sp)) || (pps.weighted_bipred_idc == 1 && b) {
            r.ue().map_err(m)?; // luma_log2_weight_denom
            if sps.chroma_array_type != 0 {
                r.ue().map_err(m)?;
            }
            for refs in [l0, if b { l1 } else { 0 }] {
                for _ in 0..refs {
                    if r.bit().map_err(m)? {
                        r.se().map_err(m)?;
                        r.se().map_err(m)?;
                    }
                    if sps.chroma_array_type != 0 && r.bit().map_err(m)? {
                        for _ in 0..4 {
                            r.se().map_err(m)?;
                        }
                    }
                }
            }
        }
        if nal_ref_idc != 0 {
            // dec_ref_pic_marking()
            if idr {
                r.bits(2).map_err(m)?;
            } else if r.bit().map_err(m)? {
                for _ in 0..=66 {
                    let op = r.ue().map_err(m)?;
                    match op {
                        0 => break,
                        1 | 3 => {
                            r.ue().map_err(m)?;
                            if op == 3 {
                                r.ue().map_err(m)?;
                            }
                        }
                        2 | 6 | 4 => {
                            r.ue().map_err(m)?;
                        }
                        5 => {}
                        _ => return Err(bad(format!("memory_management_control_operation {op}"))),
                    }
                }
            }
        }
        if pps.entropy_coding_mode && !i && !si {
            r.ue().map_err(m)?; // cabac_init_idc
        }
        r.se().map_err(m)?; // slice_qp_delta
        if sp || si {
            if sp {
                r.bit().map_err(m)?;
            }
            r.se().map_err(m)?;
        }
        if pps.deblocking_filter_control_present && r.ue().map_err(m)? != 1 {
            r.se().map_err(m)?;
            r.se().map_err(m)?;
        }
        let rbsp_bytes = r.position().div_ceil(8);
        let escaped = removed.iter().filter(|&&at| at < rbsp_bytes).count();
        // +1 for the NAL header byte.
        let len = 1 + rbsp_bytes + escaped;
        if len > nal.len() {
            return Err(Parse::Short);
        }
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emulation_prevention_is_mapped_back() {
        let (data, removed) = rbsp(&[0, 0, 3, 1, 5, 0, 0, 3, 0], usize::MAX);
        assert_eq!(data, [0, 0, 1, 5, 0, 0, 0]);
        assert_eq!(removed, [2, 6]);
    }
}
