//! `seq_parameter_set_data()` (ITU-T H.264 7.3.2.1.1) and `pic_parameter_set_rbsp()`
//! (7.3.2.2), read as far as slice headers depend on them.

use super::rbsp::Rbsp;
use crate::bits::BitReader;
use crate::{MediaError, Result};

fn invalid(what: &'static str, problem: impl Into<String>) -> MediaError {
    MediaError::Invalid {
        what,
        problem: problem.into(),
    }
}

/// The fields of a sequence parameter set that slice headers depend on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sps {
    pub seq_parameter_set_id: u32,
    pub separate_colour_plane: bool,
    /// `ChromaArrayType`.
    pub chroma_array_type: u32,
    pub log2_max_frame_num: u32,
    pub pic_order_cnt_type: u32,
    pub log2_max_pic_order_cnt_lsb: u32,
    pub delta_pic_order_always_zero: bool,
    pub frame_mbs_only: bool,
}

/// The fields of a picture parameter set that slice headers depend on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pps {
    pub pic_parameter_set_id: u32,
    pub seq_parameter_set_id: u32,
    pub entropy_coding_mode: bool,
    pub bottom_field_pic_order_in_frame_present: bool,
    pub num_ref_idx_l0_default_active: u32,
    pub num_ref_idx_l1_default_active: u32,
    pub weighted_pred: bool,
    pub weighted_bipred_idc: u32,
    pub deblocking_filter_control_present: bool,
    pub redundant_pic_cnt_present: bool,
}

/// Profiles whose SPS carries `chroma_format_idc` and the bit depths (7.3.2.1.1).
const HIGH_PROFILES: [u32; 13] = [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135];

impl Sps {
    /// Parses an SPS NAL unit (header byte included).
    pub fn parse(nal: &[u8]) -> Result<Self> {
        let rbsp = Rbsp::unescape(nal.get(1..).unwrap_or_default(), usize::MAX);
        let mut r = BitReader::new(&rbsp.data, "H.264 SPS");
        let profile_idc = r.bits(8)?;
        r.bits(16)?; // constraint_set flags, reserved_zero_2bits, level_idc
        let mut sps = Sps {
            seq_parameter_set_id: r.ue()?,
            chroma_array_type: 1,
            ..Default::default()
        };
        if HIGH_PROFILES.contains(&profile_idc) {
            sps.chroma_format_and_bit_depth(&mut r)?;
        }
        sps.log2_max_frame_num = r.ue()? + 4;
        sps.pic_order_cnt_type = r.ue()?;
        sps.pic_order_cnt(&mut r)?;
        r.ue()?; // max_num_ref_frames
        r.bit()?; // gaps_in_frame_num_value_allowed_flag
        r.ue()?; // pic_width_in_mbs_minus1
        r.ue()?; // pic_height_in_map_units_minus1
        sps.frame_mbs_only = r.bit()?;
        if sps.log2_max_frame_num > 16 || sps.log2_max_pic_order_cnt_lsb > 16 {
            return Err(invalid(
                "H.264 SPS",
                "log2_max_frame_num or log2_max_pic_order_cnt_lsb above 16",
            ));
        }
        Ok(sps)
    }

    /// From `chroma_format_idc` to the scaling matrices.
    fn chroma_format_and_bit_depth(&mut self, r: &mut BitReader) -> Result<()> {
        let chroma_format_idc = r.ue()?;
        if chroma_format_idc == 3 {
            self.separate_colour_plane = r.bit()?;
        }
        self.chroma_array_type = if self.separate_colour_plane {
            0
        } else {
            chroma_format_idc
        };
        r.ue()?; // bit_depth_luma_minus8
        r.ue()?; // bit_depth_chroma_minus8
        r.bit()?; // qpprime_y_zero_transform_bypass_flag
        if r.bit()? {
            // seq_scaling_matrix_present_flag
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bit()? {
                    scaling_list(r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
        Ok(())
    }

    /// The `pic_order_cnt_type` branch.
    fn pic_order_cnt(&mut self, r: &mut BitReader) -> Result<()> {
        match self.pic_order_cnt_type {
            0 => self.log2_max_pic_order_cnt_lsb = r.ue()? + 4,
            1 => {
                self.delta_pic_order_always_zero = r.bit()?;
                r.se()?; // offset_for_non_ref_pic
                r.se()?; // offset_for_top_to_bottom_field
                let cycle = r.ue()?;
                if cycle > 255 {
                    return Err(invalid(
                        "H.264 SPS",
                        format!("num_ref_frames_in_pic_order_cnt_cycle {cycle}"),
                    ));
                }
                for _ in 0..cycle {
                    r.se()?; // offset_for_ref_frame
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// `scaling_list()` (7.3.2.1.1.1): read only to step over it.
fn scaling_list(r: &mut BitReader, size: usize) -> Result<()> {
    let (mut last, mut next) = (8i32, 8i32);
    for _ in 0..size {
        if next != 0 {
            let delta = r.se()?;
            next = (last + delta + 256) % 256;
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

impl Pps {
    /// Parses a PPS NAL unit (header byte included). Slice groups (FMO) are refused.
    pub fn parse(nal: &[u8]) -> Result<Self> {
        let rbsp = Rbsp::unescape(nal.get(1..).unwrap_or_default(), usize::MAX);
        let mut r = BitReader::new(&rbsp.data, "H.264 PPS");
        let mut pps = Pps {
            pic_parameter_set_id: r.ue()?,
            seq_parameter_set_id: r.ue()?,
            entropy_coding_mode: r.bit()?,
            bottom_field_pic_order_in_frame_present: r.bit()?,
            ..Default::default()
        };
        if r.ue()? > 0 {
            return Err(invalid(
                "H.264 PPS",
                "slice groups (num_slice_groups_minus1 > 0) are not supported",
            ));
        }
        pps.num_ref_idx_l0_default_active = r.ue()? + 1;
        pps.num_ref_idx_l1_default_active = r.ue()? + 1;
        pps.weighted_pred = r.bit()?;
        pps.weighted_bipred_idc = r.bits(2)?;
        r.se()?; // pic_init_qp_minus26
        r.se()?; // pic_init_qs_minus26
        r.se()?; // chroma_qp_index_offset
        pps.deblocking_filter_control_present = r.bit()?;
        r.bit()?; // constrained_intra_pred_flag
        pps.redundant_pic_cnt_present = r.bit()?;
        Ok(pps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bits::BitWriter;

    fn nal(header: u8, w: &BitWriter) -> Vec<u8> {
        let mut out = vec![header];
        out.extend(w.bytes());
        out
    }

    #[test]
    fn high_profile_sps_with_scaling_lists() {
        let mut w = BitWriter::default();
        w.u(100, 8).u(0, 8).u(31, 8); // profile_idc High, constraints, level 3.1
        w.ue(2); // seq_parameter_set_id
        w.ue(1).ue(0).ue(0).flag(false); // 4:2:0, 8-bit, no bypass
        w.flag(true); // seq_scaling_matrix_present_flag
        w.flag(true); // list 0 present: a delta of -8 ends it (nextScale 0)
        w.se(-8);
        for _ in 1..8 {
            w.flag(false);
        }
        w.ue(0); // log2_max_frame_num_minus4
        w.ue(0).ue(2); // pic_order_cnt_type 0, log2_max_pic_order_cnt_lsb_minus4
        w.ue(4).flag(false).ue(79).ue(44).flag(true); // refs, gaps, 1280x720, frame_mbs_only
        let sps = Sps::parse(&nal(0x67, &w)).unwrap();
        assert_eq!(
            sps,
            Sps {
                seq_parameter_set_id: 2,
                separate_colour_plane: false,
                chroma_array_type: 1,
                log2_max_frame_num: 4,
                pic_order_cnt_type: 0,
                log2_max_pic_order_cnt_lsb: 6,
                delta_pic_order_always_zero: false,
                frame_mbs_only: true,
            }
        );
    }

    #[test]
    fn baseline_sps_with_poc_type_1() {
        let mut w = BitWriter::default();
        w.u(66, 8).u(0xc0, 8).u(30, 8).ue(0);
        w.ue(2); // log2_max_frame_num 6
        w.ue(1).flag(true).se(-1).se(2).ue(2).se(3).se(-4);
        w.ue(1).flag(false).ue(10).ue(8).flag(false); // interlaced
        let sps = Sps::parse(&nal(0x67, &w)).unwrap();
        assert_eq!((sps.log2_max_frame_num, sps.pic_order_cnt_type), (6, 1));
        assert!(sps.delta_pic_order_always_zero && !sps.frame_mbs_only);
        assert_eq!(sps.chroma_array_type, 1);
    }

    #[test]
    fn pps_fields_and_fmo_refusal() {
        let mut w = BitWriter::default();
        w.ue(3).ue(2).flag(true).flag(false).ue(0); // ids, CABAC, no slice groups
        w.ue(2).ue(0).flag(true).u(2, 2); // 3 and 1 refs, weighted_pred, bipred idc 2
        w.se(0).se(0).se(-2).flag(true).flag(false).flag(false);
        let pps = Pps::parse(&nal(0x68, &w)).unwrap();
        assert_eq!(pps.pic_parameter_set_id, 3);
        assert_eq!(pps.seq_parameter_set_id, 2);
        assert!(pps.entropy_coding_mode && pps.weighted_pred);
        assert_eq!(
            (
                pps.num_ref_idx_l0_default_active,
                pps.num_ref_idx_l1_default_active
            ),
            (3, 1)
        );
        assert_eq!(pps.weighted_bipred_idc, 2);
        assert!(pps.deblocking_filter_control_present && !pps.redundant_pic_cnt_present);

        let mut w = BitWriter::default();
        w.ue(0).ue(0).flag(false).flag(false).ue(1);
        let err = Pps::parse(&nal(0x68, &w)).unwrap_err();
        assert!(err.to_string().contains("slice groups"), "{err}");
    }

    #[test]
    fn truncated_parameter_sets_are_errors() {
        assert!(Sps::parse(&[0x67, 100]).is_err());
        assert!(Sps::parse(&[]).is_err());
        assert!(Pps::parse(&[0x68]).is_err());
    }
}
