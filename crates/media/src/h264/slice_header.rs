//! `slice_header()` (ITU-T H.264 7.3.3), parsed to its end so that the slice data that
//! follows can be found, with one function per syntax section as in the spec.

use std::ops::Range;

use super::parameter_sets::{Pps, Sps};
use super::rbsp::Rbsp;
use super::{nals, AvcConfig, NAL_IDR, NAL_PPS, NAL_SLICE, NAL_SPS};
use crate::bits::BitReader;
use crate::{MediaError, Result};

fn invalid(problem: impl Into<String>) -> MediaError {
    MediaError::Invalid {
        what: "H.264 slice header",
        problem: problem.into(),
    }
}

/// `slice_type % 5`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SliceType {
    P,
    B,
    I,
    Sp,
    Si,
}

impl SliceType {
    fn from_code(code: u32) -> Self {
        match code % 5 {
            0 => Self::P,
            1 => Self::B,
            2 => Self::I,
            3 => Self::Sp,
            _ => Self::Si,
        }
    }

    fn is_intra(self) -> bool {
        matches!(self, Self::I | Self::Si)
    }
}

/// `num_ref_idx_l0_active_minus1 + 1` and the same for list 1.
#[derive(Debug, Clone, Copy)]
struct ActiveRefs {
    l0: u32,
    l1: u32,
}

/// The parameter sets of a stream, by id, as the stream's configuration and in-band NAL
/// units give them.
#[derive(Debug, Clone, Default)]
pub struct ParameterSets {
    sps: Vec<Sps>,
    pps: Vec<Pps>,
}

impl ParameterSets {
    pub fn from_config(config: &AvcConfig) -> Result<Self> {
        let mut sets = Self::default();
        for nal in &config.sps {
            sets.add_sps(Sps::parse(nal)?);
        }
        for nal in &config.pps {
            sets.add_pps(Pps::parse(nal)?);
        }
        Ok(sets)
    }

    pub fn add_sps(&mut self, sps: Sps) {
        self.sps
            .retain(|s| s.seq_parameter_set_id != sps.seq_parameter_set_id);
        self.sps.push(sps);
    }

    pub fn add_pps(&mut self, pps: Pps) {
        self.pps
            .retain(|p| p.pic_parameter_set_id != pps.pic_parameter_set_id);
        self.pps.push(pps);
    }

    /// Bits of the slice header in the RBSP after the NAL header byte: where slice data
    /// starts. `nal_header` is the NAL unit's first byte.
    pub fn slice_header_bits(&self, nal_header: u8, rbsp: &[u8]) -> Result<usize> {
        let nal_ref_idc = (nal_header >> 5) & 3;
        let idr = nal_header & 0x1f == NAL_IDR;
        let mut r = BitReader::new(rbsp, "H.264 slice header");
        r.ue()?; // first_mb_in_slice
        let slice_type = SliceType::from_code(r.ue()?);
        let (sps, pps) = self.active(r.ue()?)?;
        if sps.separate_colour_plane {
            r.bits(2)?; // colour_plane_id
        }
        r.bits(sps.log2_max_frame_num)?; // frame_num
        let field_pic = !sps.frame_mbs_only && r.bit()?;
        if field_pic {
            r.bit()?; // bottom_field_flag
        }
        if idr {
            r.ue()?; // idr_pic_id
        }
        pic_order_cnt(&mut r, sps, pps, field_pic)?;
        if pps.redundant_pic_cnt_present {
            r.ue()?; // redundant_pic_cnt
        }
        if slice_type == SliceType::B {
            r.bit()?; // direct_spatial_mv_pred_flag
        }
        let refs = num_ref_idx_active(&mut r, pps, slice_type)?;
        ref_pic_list_modification(&mut r, slice_type)?;
        let weighted = (pps.weighted_pred && matches!(slice_type, SliceType::P | SliceType::Sp))
            || (pps.weighted_bipred_idc == 1 && slice_type == SliceType::B);
        if weighted {
            pred_weight_table(&mut r, sps, slice_type, refs)?;
        }
        if nal_ref_idc != 0 {
            dec_ref_pic_marking(&mut r, idr)?;
        }
        if pps.entropy_coding_mode && !slice_type.is_intra() {
            r.ue()?; // cabac_init_idc
        }
        r.se()?; // slice_qp_delta
        if matches!(slice_type, SliceType::Sp | SliceType::Si) {
            if slice_type == SliceType::Sp {
                r.bit()?; // sp_for_switch_flag
            }
            r.se()?; // slice_qs_delta
        }
        if pps.deblocking_filter_control_present && r.ue()? != 1 {
            r.se()?; // slice_alpha_c0_offset_div2
            r.se()?; // slice_beta_offset_div2
        }
        Ok(r.position())
    }

    fn active(&self, pps_id: u32) -> Result<(&Sps, &Pps)> {
        let pps = self
            .pps
            .iter()
            .find(|p| p.pic_parameter_set_id == pps_id)
            .ok_or_else(|| invalid(format!("slice refers to unknown PPS {pps_id}")))?;
        let sps = self
            .sps
            .iter()
            .find(|s| s.seq_parameter_set_id == pps.seq_parameter_set_id)
            .ok_or_else(|| {
                invalid(format!(
                    "PPS {pps_id} refers to unknown SPS {}",
                    pps.seq_parameter_set_id
                ))
            })?;
        Ok((sps, pps))
    }
}

/// `pic_order_cnt_lsb`, `delta_pic_order_cnt_bottom` and `delta_pic_order_cnt[]`.
fn pic_order_cnt(r: &mut BitReader, sps: &Sps, pps: &Pps, field_pic: bool) -> Result<()> {
    let bottom_coded = pps.bottom_field_pic_order_in_frame_present && !field_pic;
    if sps.pic_order_cnt_type == 0 {
        r.bits(sps.log2_max_pic_order_cnt_lsb)?;
        if bottom_coded {
            r.se()?;
        }
    }
    if sps.pic_order_cnt_type == 1 && !sps.delta_pic_order_always_zero {
        r.se()?;
        if bottom_coded {
            r.se()?;
        }
    }
    Ok(())
}

/// `num_ref_idx_active_override_flag` and the active reference counts.
fn num_ref_idx_active(r: &mut BitReader, pps: &Pps, slice_type: SliceType) -> Result<ActiveRefs> {
    let mut refs = ActiveRefs {
        l0: pps.num_ref_idx_l0_default_active,
        l1: pps.num_ref_idx_l1_default_active,
    };
    let inter = matches!(slice_type, SliceType::P | SliceType::Sp | SliceType::B);
    if inter && r.bit()? {
        refs.l0 = r.ue()? + 1;
        if slice_type == SliceType::B {
            refs.l1 = r.ue()? + 1;
        }
    }
    if refs.l0 > 32 || refs.l1 > 32 {
        return Err(invalid("more than 32 active reference indices"));
    }
    Ok(refs)
}

/// `ref_pic_list_modification()` (7.3.3.1).
fn ref_pic_list_modification(r: &mut BitReader, slice_type: SliceType) -> Result<()> {
    let lists = match slice_type {
        SliceType::B => 2,
        SliceType::I | SliceType::Si => 0,
        _ => 1,
    };
    for _ in 0..lists {
        if !r.bit()? {
            continue; // ref_pic_list_modification_flag_lX
        }
        // At most one modification per reference index, and the terminating 3.
        for _ in 0..=32 {
            match r.ue()? {
                0..=2 => {
                    r.ue()?; // abs_diff_pic_num_minus1 or long_term_pic_num
                }
                3 => break,
                idc => return Err(invalid(format!("modification_of_pic_nums_idc {idc}"))),
            }
        }
    }
    Ok(())
}

/// `pred_weight_table()` (7.3.3.2).
fn pred_weight_table(
    r: &mut BitReader,
    sps: &Sps,
    slice_type: SliceType,
    refs: ActiveRefs,
) -> Result<()> {
    r.ue()?; // luma_log2_weight_denom
    if sps.chroma_array_type != 0 {
        r.ue()?; // chroma_log2_weight_denom
    }
    let l1 = if slice_type == SliceType::B {
        refs.l1
    } else {
        0
    };
    for _ in 0..refs.l0 + l1 {
        if r.bit()? {
            r.se()?; // luma_weight
            r.se()?; // luma_offset
        }
        if sps.chroma_array_type != 0 && r.bit()? {
            for _ in 0..4 {
                r.se()?; // chroma_weight, chroma_offset for Cb and Cr
            }
        }
    }
    Ok(())
}

/// `dec_ref_pic_marking()` (7.3.3.3).
fn dec_ref_pic_marking(r: &mut BitReader, idr: bool) -> Result<()> {
    if idr {
        r.bits(2)?; // no_output_of_prior_pics_flag, long_term_reference_flag
        return Ok(());
    }
    if !r.bit()? {
        return Ok(()); // adaptive_ref_pic_marking_mode_flag
    }
    // Each operation is one of at most 32 short-term, 32 long-term pictures and a few resets.
    for _ in 0..=66 {
        match r.ue()? {
            0 => return Ok(()),
            1 | 2 | 4 | 6 => {
                r.ue()?;
            }
            3 => {
                r.ue()?; // difference_of_pic_nums_minus1
                r.ue()?; // long_term_frame_idx
            }
            5 => {}
            op => return Err(invalid(format!("memory_management_control_operation {op}"))),
        }
    }
    Err(invalid("more than 66 memory management operations"))
}

/// Follows a stream's samples (with in-band parameter sets) and finds each slice's data.
pub struct SliceLocator {
    nal_length_size: u8,
    sets: ParameterSets,
}

impl SliceLocator {
    pub fn new(config: &AvcConfig) -> Result<Self> {
        Ok(Self {
            nal_length_size: config.nal_length_size,
            sets: ParameterSets::from_config(config)?,
        })
    }

    /// The byte ranges of slice data (after each slice header) in one length-prefixed
    /// sample, in order.
    pub fn slice_data(&mut self, sample: &[u8]) -> Result<Vec<Range<usize>>> {
        let mut out = Vec::new();
        for nal in nals(sample, self.nal_length_size)? {
            let body = &sample[nal.payload_start..nal.end];
            match nal.nal_type {
                NAL_SLICE | NAL_IDR => {
                    let header = self.slice_header_len(body)?;
                    out.push(nal.payload_start + header..nal.end);
                }
                NAL_SPS => self.sets.add_sps(Sps::parse(body)?),
                NAL_PPS => self.sets.add_pps(Pps::parse(body)?),
                _ => {}
            }
        }
        Ok(out)
    }

    /// Bytes of a slice NAL unit (from its header byte) up to the end of the slice header.
    /// A slice header is a few dozen bytes: only a prefix of the slice is unescaped, a longer
    /// one only when the header does not fit in it.
    fn slice_header_len(&self, nal: &[u8]) -> Result<usize> {
        let escaped = &nal[1..];
        for limit in [64, 1024, usize::MAX] {
            let rbsp = Rbsp::unescape(escaped, limit);
            match self.sets.slice_header_bits(nal[0], &rbsp.data) {
                Ok(bits) => {
                    let len = 1 + rbsp.escaped_len(bits.div_ceil(8));
                    if len <= nal.len() {
                        return Ok(len);
                    }
                }
                Err(MediaError::Truncated { .. }) if limit < escaped.len() => continue,
                Err(e) => return Err(e),
            }
            if limit >= escaped.len() {
                break;
            }
        }
        Err(invalid("slice header runs past the end of its NAL unit"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bits::BitWriter;

    fn sets(sps: Sps, pps: Pps) -> ParameterSets {
        let mut s = ParameterSets::default();
        s.add_sps(sps);
        s.add_pps(pps);
        s
    }

    fn main_sps() -> Sps {
        Sps {
            seq_parameter_set_id: 0,
            chroma_array_type: 1,
            log2_max_frame_num: 4,
            pic_order_cnt_type: 0,
            log2_max_pic_order_cnt_lsb: 6,
            frame_mbs_only: true,
            ..Sps::default()
        }
    }

    fn cabac_pps() -> Pps {
        Pps {
            entropy_coding_mode: true,
            num_ref_idx_l0_default_active: 3,
            num_ref_idx_l1_default_active: 1,
            weighted_bipred_idc: 0,
            deblocking_filter_control_present: true,
            ..Pps::default()
        }
    }

    #[test]
    fn idr_slice_header() {
        let mut w = BitWriter::default();
        w.ue(0).ue(7).ue(0); // first_mb, slice_type I (7), pps 0
        w.u(0, 4).ue(0).u(0, 6); // frame_num, idr_pic_id, pic_order_cnt_lsb
        w.u(0, 2); // dec_ref_pic_marking (IDR)
        w.se(-3); // slice_qp_delta
        w.ue(0).se(0).se(0); // disable_deblocking_filter_idc 0: offsets
        let s = sets(main_sps(), cabac_pps());
        assert_eq!(s.slice_header_bits(0x65, &w.bytes()).unwrap(), w.len());
    }

    #[test]
    fn b_slice_with_modifications_and_weights() {
        let mut pps = cabac_pps();
        pps.weighted_bipred_idc = 1;
        let mut w = BitWriter::default();
        w.ue(0).ue(1).ue(0); // B slice
        w.u(5, 4).u(12, 6); // frame_num, poc lsb
        w.flag(true); // direct_spatial_mv_pred
        w.flag(true).ue(1).ue(0); // override: 2 refs in l0, 1 in l1
        w.flag(true).ue(0).ue(4).ue(3); // l0 modification, then end
        w.flag(false); // l1 none
        w.ue(5).ue(4); // luma and chroma denominators
        for i in 0..3 {
            w.flag(i == 1);
            if i == 1 {
                w.se(3).se(-1);
            }
            w.flag(i == 2);
            if i == 2 {
                w.se(1).se(1).se(1).se(1);
            }
        }
        w.flag(true).ue(1).ue(2).ue(3).ue(4).ue(1).ue(0); // adaptive marking: ops 1, 3, end
        w.ue(2); // cabac_init_idc
        w.se(4).ue(1); // qp delta, deblocking disabled (no offsets)
        let s = sets(main_sps(), pps);
        assert_eq!(s.slice_header_bits(0x21, &w.bytes()).unwrap(), w.len());
    }

    #[test]
    fn unknown_parameter_sets_and_bad_codes_are_errors() {
        let mut w = BitWriter::default();
        w.ue(0).ue(0).ue(4);
        let s = sets(main_sps(), cabac_pps());
        let err = s.slice_header_bits(0x41, &w.bytes()).unwrap_err();
        assert!(err.to_string().contains("unknown PPS 4"), "{err}");

        let mut w = BitWriter::default();
        w.ue(0).ue(0).ue(0).u(0, 4).u(0, 6).flag(false);
        w.flag(true).ue(9); // modification_of_pic_nums_idc 9
        let err = s.slice_header_bits(0x41, &w.bytes()).unwrap_err();
        assert!(
            err.to_string().contains("modification_of_pic_nums_idc 9"),
            "{err}"
        );
    }

    /// Inserts `emulation_prevention_three_byte`s (7.4.1).
    fn escape(rbsp: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut zeros = 0;
        for &b in rbsp {
            if zeros >= 2 && b <= 3 {
                out.push(3);
                zeros = 0;
            }
            zeros = if b == 0 { zeros + 1 } else { 0 };
            out.push(b);
        }
        out
    }

    #[test]
    fn slice_data_starts_after_the_escaped_header() {
        // An SPS (16-bit frame_num) and a PPS in band, then an IDR slice whose header holds
        // a run of zero bytes, so that its escaped form is longer than its RBSP.
        let sps_nal = {
            let mut w = BitWriter::default();
            w.u(66, 8).u(0, 8).u(30, 8).ue(0).ue(12).ue(0).ue(2);
            w.ue(1).flag(false).ue(0).ue(0).flag(true);
            let mut v = vec![0x67];
            v.extend(escape(&w.bytes()));
            v
        };
        let pps_nal = {
            let mut w = BitWriter::default();
            w.ue(0).ue(0).flag(false).flag(false).ue(0).ue(0).ue(0);
            w.flag(false)
                .u(0, 2)
                .se(0)
                .se(0)
                .se(0)
                .flag(false)
                .flag(false)
                .flag(false);
            let mut v = vec![0x68];
            v.extend(escape(&w.bytes()));
            v
        };
        let mut w = BitWriter::default();
        w.ue(0).ue(7).ue(0); // first_mb, I slice, PPS 0
        w.u(0, 16).ue(65535); // frame_num, idr_pic_id: 32 zero bits in a row
        w.u(0, 6).u(0, 2).se(0); // poc lsb, marking, slice_qp_delta
        let header = w.bytes();
        let escaped_header = escape(&header);
        assert!(
            escaped_header.len() > header.len(),
            "the header needs escaping"
        );
        let mut rbsp = header.clone();
        rbsp.extend([0xaa; 40]);
        let mut slice = vec![0x65];
        slice.extend(escape(&rbsp));
        let mut sample = Vec::new();
        for nal in [&sps_nal, &pps_nal, &slice] {
            sample.extend((nal.len() as u32).to_be_bytes());
            sample.extend(nal.iter());
        }
        let mut record = vec![1, 66, 0, 30, 0xff, 0xe1];
        record.extend((sps_nal.len() as u16).to_be_bytes());
        record.extend(&sps_nal);
        record.push(1);
        record.extend((pps_nal.len() as u16).to_be_bytes());
        record.extend(&pps_nal);
        let config = AvcConfig::from_record(&record).unwrap();
        let mut locator = SliceLocator::new(&config).unwrap();
        let data = locator.slice_data(&sample).unwrap();
        let slice_start = sample.len() - slice.len();
        assert_eq!(
            data,
            vec![slice_start + 1 + escaped_header.len()..sample.len()]
        );
    }
}
